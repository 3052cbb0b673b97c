// Live subscribers of this replica, to devices' streams (Notify) and terminals' own streams
// (FollowTerminal) alike: each stream has a key (pipe.ts: a device id, or terminal/<id>). A
// database NOTIFY per stream key (sent by whichever replica stored the event) says the stream
// grew. Subscribers that are up to date and idle ("parked") are served by the hub: one store
// read per stream and cursor, then a plain write of the same reply to each, as a bare fan-out
// would. A subscriber that is catching up, whose stream is full, or whose channel must be
// re-checked runs its own loop (handlers.ts) instead. No event payload is held in memory for a
// subscriber.
import type { Kysely } from 'kysely'
import { originOf, type SharedDatabase, whenSettled } from '../runtime/database.ts'
import { CHANNELS_CHANNEL, EVENTS_CHANNEL, type EventRow, parseEventsNotification } from './store/repository.ts'

export class Subscription {
  /** The last sequence written to this subscriber. */
  cursor: bigint
  /** Set by a notification the hub could not serve; cleared by the subscriber before it reads the store. */
  dirty = true
  /**
   * Set when this terminal's channel may have closed: the subscriber checks it before going on.
   * Set from the start too, so a close between the caller's check and this registration counts.
   */
  recheckChannel: boolean
  /** Set when the hub's write filled the stream: the subscriber waits for it to drain first. */
  needsDrain = false
  /** True while the subscriber's loop waits, up to date: only then does the hub write to it. */
  parked = false
  private wake: (() => void) | undefined
  // One abort listener for the subscription's life, not one per wait.
  private readonly onAbort = (): void => this.resume()

  constructor(
    /** The stream's key (pipe.ts). */
    readonly stream: string,
    /** The terminal following a device's stream through its channel; undefined otherwise. */
    readonly terminalId: string | undefined,
    afterSequence: bigint,
    /** Writes one event to the subscriber's stream; false when the stream is full. */
    readonly write: (row: EventRow) => boolean,
    private readonly signal: AbortSignal,
    private readonly release: (s: Subscription) => void,
  ) {
    this.cursor = afterSequence
    this.recheckChannel = terminalId !== undefined
    signal.addEventListener('abort', this.onAbort, { once: true })
  }

  /** Hands the subscription back to its own loop, which re-reads the store. */
  notify(): void {
    this.dirty = true
    this.resume()
  }

  /** Waits, parked, for the hub to need the loop, or cancellation. */
  wait(): Promise<void> | undefined {
    if (this.dirty || this.signal.aborted) return undefined
    this.parked = true
    return new Promise<void>((resolve) => (this.wake = resolve))
  }

  close(): void {
    this.signal.removeEventListener('abort', this.onAbort)
    this.resume()
    this.release(this)
  }

  private resume(): void {
    this.parked = false
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

export type ReadEvents = (stream: string, afterSequence: bigint) => Promise<EventRow[]>

/** The hub of each running service, by the database view its handlers begin transactions on. */
const hubs = new WeakMap<Kysely<any>, SubscriberHub>()

/**
 * Tells the local hub about an event appended in `trx`, so that once it commits the hub writes it
 * to the subscribers right behind it without reading it back (its NOTIFY then asks nothing more).
 * Without a local hub, or in a transaction whose outcome cannot be seen, the NOTIFY serves alone.
 */
export function trackAppend(trx: Kysely<any>, row: EventRow): void {
  const origin = originOf(trx)
  const hub = origin ? hubs.get(origin) : undefined
  if (!hub) return
  const settled = whenSettled(
    trx,
    () => hub.appended(row.device_id, row.sequence, row),
    () => hub.appended(row.device_id, row.sequence, undefined),
  )
  if (settled) hub.appendingEvent(row.device_id, row.sequence)
}

export class SubscriberHub {
  private readonly byStream = new Map<string, Set<Subscription>>()
  /** Devices whose parked subscribers are being served, and those notified again meanwhile. */
  private readonly serving = new Map<string, Promise<void>>()
  private readonly servingAgain = new Set<string>()
  private unlisten: (() => Promise<void>)[] = []
  /** Set when the server shuts down: subscribers end their streams so clients reconnect elsewhere. */
  closing = false

  constructor(
    private readonly read: ReadEvents,
    /** Rows per read; a full batch means more may follow, and the subscriber's loop catches up. */
    private readonly batch: number,
  ) {}

  /** Serves, without a read, the events appended through transactions begun on `db` (trackAppend). */
  servesAppendsOf(db: Kysely<any>): void {
    hubs.set(db, this)
  }

  async start(listen: SharedDatabase['listen']): Promise<void> {
    // After a lost connection, notifications may have been missed: everyone re-reads and re-checks.
    const missedSome = (): void => {
      for (const set of this.byStream.values()) for (const s of set) s.recheckChannel = s.terminalId !== undefined
      this.notifyAll()
    }
    this.unlisten.push(await listen(EVENTS_CHANNEL, (payload) => this.notified(payload), missedSome))
    this.unlisten.push(
      await listen(
        CHANNELS_CHANNEL,
        (payload) => {
          const [deviceId, terminalId] = JSON.parse(payload) as [string, string]
          // A device's stream key is its device id (pipe.ts).
          for (const s of this.byStream.get(deviceId) ?? []) {
            if (s.terminalId !== terminalId) continue
            s.recheckChannel = true
            s.notify()
          }
        },
        missedSome,
      ),
    )
  }

  subscribe(stream: string, terminalId: string | undefined, afterSequence: bigint, write: Subscription['write'], signal: AbortSignal): Subscription {
    const subscription = new Subscription(stream, terminalId, afterSequence, write, signal, (s) => {
      const set = this.byStream.get(s.stream)
      set?.delete(s)
      if (set?.size === 0) this.byStream.delete(s.stream)
    })
    let set = this.byStream.get(stream)
    if (!set) this.byStream.set(stream, (set = new Set()))
    set.add(subscription)
    return subscription
  }

  /**
   * A NOTIFY from whichever replica stored an event. Nothing to do when this replica stores that
   * very event itself and serves it on commit (appended), or when every subscriber has it already.
   */
  private notified(payload: string): void {
    const { stream, sequence } = parseEventsNotification(payload)
    if (sequence !== undefined) {
      if ((this.appending.get(stream) ?? 0n) >= sequence) return
      const set = this.byStream.get(stream)
      if (set && [...set].every((s) => s.cursor >= sequence)) return
    }
    this.notifyStream(stream)
  }

  /**
   * Events this replica is appending, per stream: the highest sequence whose transaction has not
   * settled. Their notifications are left to appended(), which needs no read for them.
   */
  private readonly appending = new Map<string, bigint>()

  /** An event this replica is storing (its transaction still open): served by appended() once committed. */
  appendingEvent(stream: string, sequence: bigint): void {
    if ((this.appending.get(stream) ?? 0n) < sequence) this.appending.set(stream, sequence)
  }

  /**
   * The event this replica stored committed (or, `row` undefined, its transaction rolled back):
   * parked subscribers right behind it get the row as it was written, without a read; everyone
   * else is served as on a notification.
   */
  appended(stream: string, sequence: bigint, row: EventRow | undefined): void {
    if (this.appending.get(stream) === sequence) this.appending.delete(stream)
    const set = this.byStream.get(stream)
    if (!set) return
    if (row && !this.serving.has(stream)) {
      let others = false
      // Made once, not per subscriber: at 10,000 subscribers each allocation is 10,000 of them.
      const rows = [row]
      const previous = row.sequence - 1n
      for (const s of set) {
        if (s.cursor >= row.sequence) continue
        if (s.parked && !s.recheckChannel && !s.needsDrain && s.cursor === previous) this.writeTo(s, rows)
        else others = true
      }
      if (!others) return
    }
    this.notifyStream(stream)
  }

  /** Writes rows to a parked subscriber, as far as its stream takes them; a full stream hands it to its loop. */
  private writeTo(s: Subscription, rows: readonly EventRow[]): void {
    for (const row of rows) {
      const more = s.write(row)
      s.cursor = row.sequence
      if (!more) {
        s.needsDrain = true
        break
      }
    }
    if (s.needsDrain || rows.length === this.batch) s.notify()
  }

  /** The stream grew: busy subscribers will re-read; parked ones are served here. */
  notifyStream(stream: string): void {
    const set = this.byStream.get(stream)
    if (!set) return
    for (const s of set) if (!s.parked) s.dirty = true
    if (this.serving.has(stream)) {
      this.servingAgain.add(stream)
      return
    }
    this.serving.set(
      stream,
      this.serve(stream).finally(() => this.serving.delete(stream)),
    )
  }

  /**
   * The safety net, run every pollMs by the service's sweeper (one pass at a time): every device's
   * parked subscribers served in turn (one read per device and cursor), not a timer per
   * subscriber: 10,000 subscribers would otherwise poll 2,000 times a second.
   */
  async sweep(): Promise<void> {
    for (const stream of [...this.byStream.keys()]) {
      if (this.closing) return
      this.notifyStream(stream)
      await this.serving.get(stream)
    }
  }

  /** One read per distinct cursor among the stream's parked subscribers, then a write to each. */
  private async serve(stream: string): Promise<void> {
    do {
      this.servingAgain.delete(stream)
      const byCursor = new Map<bigint, Subscription[]>()
      for (const s of this.byStream.get(stream) ?? []) {
        if (!s.parked) continue
        if (s.recheckChannel) {
          s.notify() // its loop checks the channel before anything is written
          continue
        }
        const group = byCursor.get(s.cursor)
        if (group) group.push(s)
        else byCursor.set(s.cursor, [s])
      }
      for (const [cursor, group] of byCursor) {
        let rows: EventRow[]
        try {
          rows = await this.read(stream, cursor)
        } catch {
          for (const s of group) s.notify() // each loop reads again and reports what fails
          continue
        }
        for (const s of group) {
          // Only a subscriber still parked where this read started may take its rows.
          if (!s.parked || s.cursor !== cursor) continue
          this.writeTo(s, rows)
        }
      }
    } while (this.servingAgain.has(stream))
  }

  /** Hands every subscriber back to its own loop (lost notifications, shutdown). */
  notifyAll(): void {
    for (const set of this.byStream.values()) for (const subscription of set) subscription.notify()
  }

  count(): number {
    let n = 0
    for (const set of this.byStream.values()) n += set.size
    return n
  }

  async stop(): Promise<void> {
    this.closing = true
    this.notifyAll()
    await Promise.all(this.unlisten.splice(0).map((stop) => stop()))
  }
}
