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

  /** Moves the clock just past `when`. */
  passTime(when: Date | undefined): void {
    this.advance(Math.max(0, (when?.getTime() ?? 0) - this.now().getTime()) + 1)
  }
}

/**
 * A clock that runs with real time and can be moved ahead (tests): a deadline passes at once, while
 * what is timed on the way (a recheck due in a second, a retry's backoff) still comes due as it would.
 */
export class AheadClock extends ManualClock {
  private readonly startedMs = Date.now()

  override now(): Date {
    return new Date(super.now().getTime() + Date.now() - this.startedMs)
  }
}
