// A token bucket per key (e.g. per caller), for RPCs that clients might poll. Memory is bounded:
// the least recently used keys are forgotten beyond `maxKeys`.
import { ResourceExhaustedError } from './errors.ts'

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  /** Takes one token for `key` or throws RESOURCE_EXHAUSTED with the time to wait. */
  take(key: string, what: string, now = Date.now()): void {
    const previous = this.buckets.get(key)
    const tokens = previous ? Math.min(this.burst, previous.tokens + ((now - previous.at) / 1000) * this.perSecond) : this.burst
    this.buckets.delete(key)
    if (tokens < 1) {
      this.buckets.set(key, { tokens, at: now })
      const waitMs = ((1 - tokens) / this.perSecond) * 1000
      throw new ResourceExhaustedError('RATE_LIMITED', `${what} is limited to ${this.perSecond} calls per second; wait for events instead of polling`, waitMs)
    }
    this.buckets.set(key, { tokens: tokens - 1, at: now })
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!)
  }
}
