// How many long-lived streams one caller may hold on one replica at once. Without a bound one
// certificate opened thousands of Notify streams (4,000 took ~200 MB between client and server),
// each re-read on every publish to its device, until the process that serves every device's pipe
// ran out of memory. A device has its instance and a few terminals; a caller over the bound is
// refused RESOURCE_EXHAUSTED before its stream costs anything, and may open one once another ends.
import { ResourceExhaustedError } from './errors.ts'
import { formatIdentity, type Identity } from './identity.ts'

export class StreamQuota {
  private readonly held = new Map<string, number>()

  constructor(private readonly perCaller: number) {}

  /** Counts a stream of `caller`, or refuses it; call the returned function once the stream ends. */
  admit(caller: Identity): () => void {
    const key = formatIdentity(caller)
    const count = this.held.get(key) ?? 0
    if (count >= this.perCaller) {
      throw new ResourceExhaustedError(
        'TOO_MANY_STREAMS',
        `${key} already holds ${this.perCaller} streams on this replica (CLOUDPAY_MAX_STREAMS_PER_CALLER); end one before opening another`,
      )
    }
    this.held.set(key, count + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.held.get(key) ?? 1) - 1
      if (left > 0) this.held.set(key, left)
      else this.held.delete(key)
    }
  }
}
