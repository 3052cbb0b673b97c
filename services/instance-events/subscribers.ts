// Live Notify subscribers of this replica. A database NOTIFY per device (sent by whichever
// replica stored the event) marks that device's subscribers dirty and wakes them; they then
// re-read the store. No event payload is held in memory for a subscriber.
import type { SharedDatabase } from '../runtime/database.ts'
import { CHANNELS_CHANNEL, EVENTS_CHANNEL } from './store/repository.ts'

export class Subscription {
  /** Set by a notification; cleared by the subscriber before it reads the store. */
  dirty = true
  /**
   * Set when this terminal's channel may have closed: the subscriber checks it before going on.
   * Set from the start too, so a close between the caller's check and this registration counts.
   */
  recheckChannel: boolean
  private wake: (() => void) | undefined
  // One timer and one abort listener for the subscription's life, not one per wait: a publish
  // to a device with thousands of subscribers would otherwise create and drop thousands of each.
  private readonly poll: NodeJS.Timeout
  private readonly onAbort = (): void => this.resume()

  constructor(
    readonly deviceId: string,
    /** The terminal following the stream; undefined for the instance itself. */
    readonly terminalId: string | undefined,
    private readonly signal: AbortSignal,
    pollMs: number,
    private readonly release: (s: Subscription) => void,
  ) {
    this.recheckChannel = terminalId !== undefined
    this.poll = setTimeout(() => this.resume(), pollMs)
    this.poll.unref()
    signal.addEventListener('abort', this.onAbort, { once: true })
  }

  notify(): void {
    this.dirty = true
    this.resume()
  }

  /** Waits for a notification, the poll interval (safety net), or cancellation. */
  async wait(): Promise<void> {
    if (this.dirty || this.signal.aborted) return
    this.poll.refresh()
    await new Promise<void>((resolve) => (this.wake = resolve))
  }

  close(): void {
    clearTimeout(this.poll)
    this.signal.removeEventListener('abort', this.onAbort)
    this.resume()
    this.release(this)
  }

  private resume(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

export class SubscriberHub {
  private readonly byDevice = new Map<string, Set<Subscription>>()
  private unlisten: (() => Promise<void>)[] = []
  /** Set when the server shuts down: subscribers end their streams so clients reconnect elsewhere. */
  closing = false

  async start(listen: SharedDatabase['listen']): Promise<void> {
    // After a lost connection, notifications may have been missed: everyone re-reads and re-checks.
    const missedSome = (): void => {
      for (const set of this.byDevice.values()) for (const s of set) s.recheckChannel = s.terminalId !== undefined
      this.notifyAll()
    }
    this.unlisten.push(await listen(EVENTS_CHANNEL, (deviceId) => this.notifyDevice(deviceId), missedSome))
    this.unlisten.push(
      await listen(
        CHANNELS_CHANNEL,
        (payload) => {
          const [deviceId, terminalId] = JSON.parse(payload) as [string, string]
          for (const s of this.byDevice.get(deviceId) ?? []) {
            if (s.terminalId !== terminalId) continue
            s.recheckChannel = true
            s.notify()
          }
        },
        missedSome,
      ),
    )
  }

  constructor(private readonly pollMs: number) {}

  subscribe(deviceId: string, terminalId: string | undefined, signal: AbortSignal): Subscription {
    const subscription = new Subscription(deviceId, terminalId, signal, this.pollMs, (s) => {
      const set = this.byDevice.get(s.deviceId)
      set?.delete(s)
      if (set?.size === 0) this.byDevice.delete(s.deviceId)
    })
    let set = this.byDevice.get(deviceId)
    if (!set) this.byDevice.set(deviceId, (set = new Set()))
    set.add(subscription)
    return subscription
  }

  notifyDevice(deviceId: string): void {
    for (const subscription of this.byDevice.get(deviceId) ?? []) subscription.notify()
  }

  notifyAll(): void {
    for (const set of this.byDevice.values()) for (const subscription of set) subscription.notify()
  }

  count(): number {
    let n = 0
    for (const set of this.byDevice.values()) n += set.size
    return n
  }

  async stop(): Promise<void> {
    this.closing = true
    this.notifyAll()
    await Promise.all(this.unlisten.splice(0).map((stop) => stop()))
  }
}
