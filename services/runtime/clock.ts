// The time services reason with (expiries, TTLs, "now" in the rules), taken from the service deps
// so tests can move it instead of waiting or shortening a TTL. Timers (intervals, deadlines) and
// the database's own now() are not this clock: they measure real elapsed time.

export interface Clock {
  now(): Date
}

export const systemClock: Clock = { now: () => new Date() }

/** A clock that moves only when told to (tests). */
export class ManualClock implements Clock {
  private epochMs: number

  constructor(start: Date = new Date()) {
    this.epochMs = start.getTime()
  }

  now(): Date {
    return new Date(this.epochMs)
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a clock moves forward: advance(${ms})`)
    this.epochMs += ms
  }
}
