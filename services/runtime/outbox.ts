// Transactional outbox: a delivery is written in the same transaction as the state change that
// requires it, then sent at least once, retried with jittered backoff until its handler succeeds.
// Replicas share the table: a delivery is leased (next_attempt_at pushed out) before it is
// attempted, so one replica works on it at a time, and no transaction stays open across the
// remote call. A delivery that can never succeed (a refusal no retry changes, or too many
// attempts) is dead-lettered: it stops, keeps its reason, is logged at error level once and counted.
import { status as Status } from '@grpc/grpc-js'
import { type Generated, type Kysely, sql } from 'kysely'
import { randomUUID } from 'node:crypto'
import { context, metrics, SpanKind, SpanStatusCode, trace as otelTrace, type Tracer } from '@opentelemetry/api'
import type { PaymentSettings } from './config.ts'
import { afterCommit, offerToNextTransaction, originOf, whenSettled } from './database.ts'
import { changedByRider, commitsTransaction, ridesAlong } from './pipelined-transaction.ts'
import { CloudpayError } from './errors.ts'
import type { Logger } from './logger.ts'
import { PeerError } from './peer-calls.ts'
import { queryTemplate } from './query-template.ts'
import { SERVICE_TRACER } from './telemetry.ts'
import { captureContext, restoreContext } from './trace-context.ts'
import type { Worker } from './workers.ts'

export const OUTBOX_TABLE = 'outbox'

export interface OutboxTable {
  delivery_id: string
  topic: string
  payload: Record<string, string>
  attempts: Generated<number>
  next_attempt_at: Generated<Date>
  delivered_at: Date | null
  last_error: string | null
  created_at: Generated<Date>
  /** Set when the delivery was given up on (dead letter); it is never attempted again. */
  dead_at: Generated<Date | null>
  dead_reason: Generated<string | null>
}

type OutboxDb = Kysely<{ [OUTBOX_TABLE]: OutboxTable }>

/** Part of a service's migrations. */
export async function createOutboxTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(OUTBOX_TABLE)
    .addColumn('delivery_id', 'text', (c) => c.primaryKey())
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('delivered_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('outbox_due').on(OUTBOX_TABLE).column('next_attempt_at').where(sql.ref('delivered_at'), 'is', null).execute()
}

/**
 * Dead letters (migration 2026_12_01 of every schema with an outbox; frozen like it): when and
 * why a delivery was given up on. Due deliveries are found by an index that leaves dead ones out.
 */
export async function addOutboxDeadLetters(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable(OUTBOX_TABLE).addColumn('dead_at', 'timestamptz').addColumn('dead_reason', 'text').execute()
  await db.schema.dropIndex('outbox_due').execute()
  await db.schema
    .createIndex('outbox_due')
    .on(OUTBOX_TABLE)
    .column('next_attempt_at')
    .where(sql<boolean>`delivered_at is null and dead_at is null`)
    .execute()
  await db.schema.createIndex('outbox_dead').on(OUTBOX_TABLE).column('dead_at').where(sql.ref('dead_at'), 'is not', null).execute()
}

/** Where the delivery's trace context rides in its payload. */
const TRACE_FIELD = '_trace'

/** How long a delivery's acknowledgement waits for others to share its UPDATE, or for a transaction of its service to ride in. */
const ACK_WINDOW_MS = 20

/** A running outbox, as enqueue() sees it: how long it leases, and how it attempts a delivery it already holds. */
interface LocalOutbox {
  readonly leaseMs: number
  attemptHeld(row: DueRow): void
}

/** The running outbox of each service database view (the Kysely its handlers begin transactions on). */
const localOutboxes = new WeakMap<Kysely<any>, LocalOutbox>()
/** Deliveries enqueued where no local outbox could take them at once: kick() then looks for them. */
let enqueuedUnheld = 0

type EnqueuedRow = { delivery_id: string; topic: string; payload: string }

const insertDelivery = (db: OutboxDb, row: EnqueuedRow, held?: { leaseMs: string }) =>
  db
    .insertInto(OUTBOX_TABLE)
    .values({
      delivery_id: row.delivery_id,
      topic: row.topic,
      payload: row.payload as unknown as Record<string, string>,
      delivered_at: null,
      last_error: null,
      ...(held ? { next_attempt_at: sql<Date>`now() + ${held.leaseMs}::interval`, attempts: 1 } : {}),
    })
    .onConflict((oc) => oc.column('delivery_id').doNothing())
/** A delivery for another process's outbox (or for the periodic poll). */
const ENQUEUE = queryTemplate('outbox.enqueue', (db: OutboxDb, row: EnqueuedRow) => insertDelivery(db, row))
/** A delivery this process's outbox attempts after the commit: written leased to it (attempt 1). */
const ENQUEUE_HELD = queryTemplate('outbox.enqueueHeld', (db: OutboxDb, row: EnqueuedRow & { leaseMs: string }) => insertDelivery(db, row, row))
/** The UPDATE marking deliveries delivered (a batch of acknowledgements, or one inside its handler's transaction): one shape for any number. */
const MARK_DELIVERED = queryTemplate('outbox.markDelivered', (db: OutboxDb, v: { deliveryIds: string[]; now: Date }) =>
  db
    .updateTable(OUTBOX_TABLE)
    .set({ delivered_at: v.now, last_error: null })
    .where('delivery_id', '=', sql<string>`any(${v.deliveryIds}::text[])`),
)
/** Up to 20 due deliveries, leased to this replica for `lease` (an interval), skipping those another replica holds. */
const CLAIM_DUE = queryTemplate('outbox.claimDue', (db: OutboxDb, v: { lease: string }) =>
  db
    .updateTable(OUTBOX_TABLE)
    .set({ next_attempt_at: sql`now() + ${v.lease}::interval`, attempts: sql`attempts + 1` })
    .where('delivery_id', 'in', (eb) =>
      eb
        .selectFrom(OUTBOX_TABLE)
        .select('delivery_id')
        .where('delivered_at', 'is', null)
        .where('dead_at', 'is', null)
        .where('next_attempt_at', '<=', sql<Date>`now()`)
        .orderBy('next_attempt_at')
        .limit(20)
        .forUpdate()
        .skipLocked(),
    )
    .returning(['delivery_id', 'topic', 'payload', 'attempts']),
)
const COUNT_DEAD = queryTemplate('outbox.countDead', (db: OutboxDb, _v: object) =>
  db
    .selectFrom(OUTBOX_TABLE)
    .select((eb) => eb.fn.countAll().as('n'))
    .where('dead_at', 'is not', null),
)
const markDelivered = (db: OutboxDb, deliveryIds: readonly string[]) => MARK_DELIVERED.compile(db, { deliveryIds: [...deliveryIds], now: new Date() })

/**
 * Adds a delivery inside the caller's transaction; its id is the request id the receiver dedupes
 * on. The active trace context goes with it, so the delivery continues the caller's trace.
 *
 * When this process runs the outbox of the transaction's service, the row is written already
 * leased to it (attempt 1) and attempted as soon as the transaction commits: no claim statement,
 * no poll. Killed before the attempt, the delivery waits out the lease like any held one; another
 * replica (or this service restarted) then takes it.
 */
export async function enqueue(trx: Kysely<any>, topic: string, payload: Record<string, string>, deliveryId: string = randomUUID()): Promise<string> {
  const stored = { ...payload, [TRACE_FIELD]: captureContext() }
  const origin = originOf(trx)
  const local = origin ? localOutboxes.get(origin) : undefined
  const row = { delivery_id: deliveryId, topic, payload: JSON.stringify(stored) }
  const insert = local ? ENQUEUE_HELD.compile(trx as OutboxDb, { ...row, leaseMs: `${local.leaseMs} milliseconds` }) : ENQUEUE.compile(trx as OutboxDb, row)
  // Nothing in the transaction reads the row back: it rides with the transaction's next round trip.
  const inserted = changedByRider(await trx.executeQuery(ridesAlong(insert)))
  if (!local) enqueuedUnheld += 1
  // An id enqueued before (onConflict) is not ours to attempt: it is leased or delivered already.
  else afterCommit(trx, () => void inserted.then((n) => n > 0n && local.attemptHeld({ delivery_id: deliveryId, topic, payload: stored, attempts: 1 }), () => undefined))
  return deliveryId
}

/**
 * One attempt: resolving means delivered; throwing means not (retried, unless the error is
 * permanent). A handler that ends in a transaction of its own may call `acknowledge(trx)` as that
 * transaction's LAST statement: the delivery is then marked delivered with its effects (one commit
 * fewer), and on PostgreSQL the mark carries the COMMIT (one round trip fewer); nothing may run in
 * the transaction after it.
 */
export type DeliveryHandler = (payload: Record<string, string>, deliveryId: string, attempt: number, acknowledge: (trx: Kysely<any>) => Promise<void>) => Promise<void>

interface DueRow {
  readonly delivery_id: string
  readonly topic: string
  readonly payload: Record<string, string> | string
  readonly attempts: number
}

/** A topic's handler, and which of its errors no retry can change (default: isPermanentRefusal). */
export interface DeliveryTopic {
  readonly deliver: DeliveryHandler
  readonly isPermanent?: (error: unknown) => boolean
}

/** Refusals that describe the delivery itself: sending the same request again cannot change them. */
const PERMANENT_CODES: ReadonlySet<Status> = new Set([Status.INVALID_ARGUMENT, Status.FAILED_PRECONDITION, Status.PERMISSION_DENIED, Status.NOT_FOUND])

/**
 * The default: a deliberate refusal (a peer's relayed one, or our own domain error) with
 * INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED or NOT_FOUND. Outages, timeouts,
 * RESOURCE_EXHAUSTED, ABORTED and unexpected errors are retried.
 */
export function isPermanentRefusal(error: unknown): boolean {
  return (error instanceof CloudpayError || error instanceof PeerError) && PERMANENT_CODES.has(error.code)
}

/** The delay before retry number `attempt` (1-based): doubling from base up to max, then jittered to 50-100 % of it. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30))
  // "Equal jitter": replicas retrying the same peer spread out, and no retry comes sooner than half the backoff.
  return Math.round(ceiling / 2 + random() * (ceiling / 2))
}

export interface OutboxOptions {
  readonly db: Kysely<any>
  readonly tracer: Tracer
  readonly handlers: Readonly<Record<string, DeliveryHandler | DeliveryTopic>>
  readonly log: Logger
  readonly retryBaseMs: number
  readonly retryMaxMs: number
  /** How soon due deliveries are looked for again, without a kick, after a pass that found some. */
  readonly intervalMs?: number
  /**
   * Where the wait between passes that find nothing doubles up to (default 5 s). This replica's
   * own retries are looked for when due, whatever the wait; what it waits for is what only the
   * table says: another replica's lease run out, or a delivery enqueued by another process.
   */
  readonly idleIntervalMs?: number
  /** How long an attempt may take before another replica may try again (CLOUDPAY_OUTBOX_LEASE_MS). */
  readonly leaseMs?: number
  /** Attempts after which a delivery is dead-lettered (CLOUDPAY_OUTBOX_MAX_ATTEMPTS). */
  readonly maxAttempts?: number
  /** How long stop() lets attempts in flight finish before it hands their leases back. */
  readonly stopWaitMs?: number
  /** How long an acknowledgement waits for others to share its UPDATE, or for a transaction to ride in; ACK_WINDOW_MS by default. */
  readonly ackWindowMs?: number
}

/** The outbox options every service takes from its configuration. */
export function outboxSettings(config: { readonly payment: PaymentSettings; readonly shutdownGraceMs: number }) {
  return {
    retryBaseMs: config.payment.retryBaseMs,
    retryMaxMs: config.payment.retryMaxMs,
    leaseMs: config.payment.outboxLeaseMs,
    maxAttempts: config.payment.outboxMaxAttempts,
    stopWaitMs: config.shutdownGraceMs,
  } satisfies Partial<OutboxOptions>
}

/** A service's outbox: a worker (the host starts and stops it) that handlers also kick and wait on. */
export interface Outbox extends Worker {
  /**
   * Call after committing deliveries: looks for due ones now, unless every delivery enqueued since
   * was written held by a local outbox (then already under way).
   */
  kick(): void
  /** Deliveries not yet delivered and not dead. */
  pending(): Promise<number>
  /** Dead-lettered deliveries in the table (all replicas'), as last counted: a gauge to alert on. */
  deadLetters(): number
  /** Passes over the table so far (claim statements): a gauge for diagnostics and tests. */
  passes(): number
  /**
   * Kicks, then waits until every one of these deliveries was acknowledged (by this replica or
   * another) or `timeoutMs` passed: true when all were. A delivery not in the table counts as
   * done; a dead one ends the wait (false). Waiting never stops the retries.
   */
  delivered(deliveryIds: readonly string[], timeoutMs: number): Promise<boolean>
  /**
   * Stops looking for deliveries, lets attempts in flight finish for up to `stopWaitMs`, then
   * hands the leases of the ones still unfinished back (due now), so another replica takes them
   * at once instead of after the lease.
   */
  stop(): Promise<void>
}

/** How often the dead-letter gauge is re-counted (dead letters of other replicas show up then). */
const DEAD_RECOUNT_MS = 10_000
const deadLetterCounter = metrics.getMeter('cloudpay').createCounter('cloudpay.outbox.dead_letters', {
  description: 'Outbox deliveries given up on (refused permanently, or out of attempts)',
})

/** How often a waiter re-reads the table, for deliveries another replica attempts. */
const DELIVERED_RECHECK_MS = 250

/** An outbox and its delivery passes, started (and stopped) by its service's host. */
export function startOutbox(options: OutboxOptions): Outbox {
  const outbox = createOutbox(options)
  outbox.start()
  return outbox
}

/** An outbox not yet delivering: start() begins its passes (a service declares it as a worker). */
export function createOutbox(options: OutboxOptions): Outbox {
  const db = options.db as OutboxDb
  const leaseMs = options.leaseMs ?? 30_000
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY
  const stopWaitMs = options.stopWaitMs ?? 10_000
  const ackWindowMs = options.ackWindowMs ?? ACK_WINDOW_MS
  const busyMs = options.intervalMs ?? 500
  const idleMs = Math.max(busyMs, options.idleIntervalMs ?? 5_000)
  const topics = new Map(Object.entries(options.handlers).map(([topic, handler]) => [topic, typeof handler === 'function' ? { deliver: handler } : handler] as const))
  let running: Promise<void> | undefined
  let again = false
  let started = false
  let stopped = false
  let deadCount = 0
  /** Deliveries this replica claimed and has not finished (delivered, rescheduled or dead). */
  const inFlight = new Set<string>()
  /** Waiters woken whenever this replica acknowledges a delivery; each re-reads its own. */
  const waiters = new Set<() => void>()
  const wakeWaiters = (): void => {
    for (const wake of waiters) wake()
  }

  const claim = () => CLAIM_DUE.rows(db, { lease: `${leaseMs} milliseconds` })

  let recounts = 0
  /** Counts the table's dead letters; an older count finishing after a newer one started is dropped. */
  const recountDead = async (): Promise<void> => {
    const mine = ++recounts
    const counted = await COUNT_DEAD.first(db, {})
    if (mine === recounts) deadCount = Number(counted?.n ?? 0)
  }

  const recount = (): void => void recountDead().catch((error: unknown) => options.log.warn({ err: error }, 'counting dead outbox deliveries failed'))

  /** Gives a delivery up: it stops, keeps its reason, and is logged (once, by whichever replica wins) and counted. */
  const bury = async (row: { delivery_id: string; topic: string; attempts: number }, reason: string): Promise<void> => {
    const buried = await db
      .updateTable(OUTBOX_TABLE)
      .set({ dead_at: sql`now()`, dead_reason: reason.slice(0, 500), last_error: reason.slice(0, 500) })
      .where('delivery_id', '=', row.delivery_id)
      .where('delivered_at', 'is', null)
      .where('dead_at', 'is', null)
      .returning('delivery_id')
      .executeTakeFirst()
    if (!buried) return
    options.log.error(
      { topic: row.topic, delivery_id: row.delivery_id, attempts: row.attempts, reason },
      'outbox delivery dead-lettered: it will not be retried; fix the cause, then set dead_at to null to retry it',
    )
    deadLetterCounter.add(1, { topic: row.topic })
    deadCount += 1
    recount()
    wakeWaiters()
  }

  /**
   * Acknowledgements finishing within ACK_WINDOW_MS of each other are written in one UPDATE (under
   * load, one statement marks many deliveries), and that UPDATE rides in the service's next
   * transaction when one begins within the window (no commit of its own; on PostgreSQL no round
   * trip either); else it goes alone. Each attempt waits for its own write, which no caller's
   * answer waits for. A crash before it only redelivers, which receivers dedupe, as a crash between
   * delivery and mark always did; a transaction that carried it and rolled back hands it on to the
   * next batch; stop() writes what is waiting at once.
   */
  let batch: { ids: string[]; written: Promise<void>; write(): void } | undefined
  const acknowledged = (deliveryId: string): Promise<void> => {
    if (!batch) {
      const ids: string[] = []
      // Written under the first delivery's span, as each mark was (its query span, its count).
      const active = context.active()
      let resolve!: () => void
      let reject!: (error: unknown) => void
      const written = new Promise<void>((resolved, rejected) => {
        resolve = resolved
        reject = rejected
      })
      /** Takes the batch (once): no acknowledgement joins it after this. */
      const take = (): boolean => {
        if (batch !== current) return false
        batch = undefined
        clearTimeout(timer)
        withdraw()
        return true
      }
      const write = (): void => {
        if (take()) context.with(active, () => db.executeQuery(markDelivered(db, ids))).then(() => resolve(), reject)
      }
      const current = { ids, written, write }
      const withdraw = offerToNextTransaction(db, async (trx) => {
        if (!take()) return
        // Settled with the transaction, whatever fails in it (this UPDATE included): rolled back, the batch goes on.
        whenSettled(trx, resolve, () => void Promise.all(ids.map(acknowledged)).then(() => resolve(), reject))
        await context.with(active, () => trx.executeQuery(ridesAlong(markDelivered(trx as OutboxDb, ids))))
      })
      const timer = setTimeout(write, ackWindowMs)
      batch = current
    }
    batch.ids.push(deliveryId)
    return batch.written
  }

  const attempt = async (row: DueRow): Promise<void> => {
    const { [TRACE_FIELD]: trace, ...payload } = typeof row.payload === 'string' ? (JSON.parse(row.payload) as Record<string, string>) : row.payload
    const topic = topics.get(row.topic)
    const parent = restoreContext(trace).setValue(SERVICE_TRACER, options.tracer)
    const span = options.tracer.startSpan(
      `outbox ${row.topic}`,
      { kind: SpanKind.PRODUCER, attributes: { 'cloudpay.delivery_id': row.delivery_id, 'cloudpay.attempt': row.attempts } },
      parent,
    )
    try {
      if (!topic) throw new Error(`no handler for outbox topic ${row.topic}`)
      let acknowledgedInHandler = false
      const acknowledge = async (trx: Kysely<any>): Promise<void> => {
        await trx.executeQuery(commitsTransaction(markDelivered(trx as OutboxDb, [row.delivery_id])))
        acknowledgedInHandler = true
      }
      await context.with(otelTrace.setSpan(parent, span), () => topic.deliver(payload, row.delivery_id, row.attempts, acknowledge))
      // The span is the delivery; its shared acknowledgement follows (a trace shows no wait for it).
      span.end()
      if (!acknowledgedInHandler) await acknowledged(row.delivery_id)
      wakeWaiters()
    } catch (error) {
      if (span.isRecording()) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
        span.end()
      }
      const message = error instanceof Error ? error.message : String(error)
      const permanent = topic !== undefined && (topic.isPermanent ?? isPermanentRefusal)(error)
      if (permanent || row.attempts >= maxAttempts) {
        const reason = permanent ? `refused: ${message}` : `gave up after ${row.attempts} attempts; last error: ${message}`
        await bury(row, reason).catch((failure: unknown) => options.log.warn({ err: failure, delivery_id: row.delivery_id }, 'outbox dead-lettering failed; will retry'))
        return
      }
      const delay = retryDelayMs(row.attempts, options.retryBaseMs, options.retryMaxMs)
      options.log.warn({ topic: row.topic, delivery_id: row.delivery_id, attempt: row.attempts, retry_in_ms: delay, error: message }, 'outbox delivery failed; will retry')
      // Due by the database's clock, as claims compare it; this replica looks for it once the
      // write is done and the delay has passed (so it is due by then, whatever the clocks say).
      await db
        .updateTable(OUTBOX_TABLE)
        .set({ next_attempt_at: sql`now() + ${`${delay} milliseconds`}::interval`, last_error: message.slice(0, 500) })
        .where('delivery_id', '=', row.delivery_id)
        .execute()
        .then(() => passAt(Date.now() + delay))
        .catch(() => undefined)
    } finally {
      inFlight.delete(row.delivery_id)
    }
  }

  let passCount = 0
  /** Whether the last pass found any delivery due: the next one then comes soon, else later and later. */
  let found = false
  const drain = async (): Promise<void> => {
    found = false
    do {
      again = false
      passCount += 1
      const rows = await claim()
      if (rows.length > 0) found = true
      for (const row of rows) inFlight.add(row.delivery_id)
      await Promise.all(rows.map(attempt))
      if (rows.length === 20) again = true
    } while (again && !stopped)
  }

  const run = (): void => {
    if (!started || stopped) return
    if (running) {
      again = true
      return
    }
    running = drain()
      .catch((error: unknown) => options.log.warn({ err: error }, 'outbox pass failed'))
      .finally(() => {
        running = undefined
        wait = found ? busyMs : Math.min(wait * 2, idleMs)
        passAt(Date.now() + wait)
      })
  }

  // One timer for the next pass, moved only sooner: after a pass (its wait), or when a retry is due.
  let timer: NodeJS.Timeout | undefined
  let timerAt = Number.POSITIVE_INFINITY
  let wait = busyMs / 2
  const passAt = (at: number): void => {
    if (!started || stopped || (timer && timerAt <= at)) return
    clearTimeout(timer)
    timerAt = at
    timer = setTimeout(() => {
      timer = undefined
      timerAt = Number.POSITIVE_INFINITY
      run()
    }, Math.max(0, at - Date.now()))
    timer.unref()
  }

  /** How many of these deliveries are still to come, and whether any of them is dead (never coming). */
  const outstanding = async (ids: readonly string[]): Promise<{ undelivered: number; dead: number }> => {
    if (ids.length === 0) return { undelivered: 0, dead: 0 }
    const row = await db
      .selectFrom(OUTBOX_TABLE)
      .select((eb) => [eb.fn.countAll().as('n'), eb.fn.count('dead_at').as('dead')])
      .where('delivery_id', 'in', [...ids])
      .where('delivered_at', 'is', null)
      .executeTakeFirstOrThrow()
    return { undelivered: Number(row.n), dead: Number(row.dead) }
  }

  const delivered = async (ids: readonly string[], timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    run()
    for (;;) {
      // Registered before the read, so an acknowledgement between the read and the wait wakes it.
      let wake!: () => void
      const woken = new Promise<void>((resolve) => (wake = resolve))
      waiters.add(wake)
      try {
        const { undelivered, dead } = await outstanding(ids)
        if (undelivered === 0) return true
        if (dead > 0) return false
        const left = deadline - Date.now()
        if (left <= 0 || stopped) return false
        let timeout: NodeJS.Timeout | undefined
        await Promise.race([woken, new Promise<void>((resolve) => (timeout = setTimeout(resolve, Math.min(left, DELIVERED_RECHECK_MS))))])
        clearTimeout(timeout)
      } finally {
        waiters.delete(wake)
      }
    }
  }

  /** Attempts of held deliveries under way (outside any pass): stop() waits for them as for a pass. */
  const heldAttempts = new Set<Promise<void>>()
  /** A delivery this replica wrote leased to itself (enqueue), its transaction now committed. */
  const attemptHeld = (row: DueRow): void => {
    if (stopped) {
      // Stopping: hand it back at once, as stop() does for attempts in flight.
      void db
        .updateTable(OUTBOX_TABLE)
        .set({ next_attempt_at: sql`now()` })
        .where('delivery_id', '=', row.delivery_id)
        .where('delivered_at', 'is', null)
        .execute()
        .catch(() => undefined)
      return
    }
    inFlight.add(row.delivery_id)
    const attempted = attempt(row)
      .catch((error: unknown) => options.log.warn({ err: error, delivery_id: row.delivery_id }, 'outbox attempt failed; retried after its lease'))
      .finally(() => heldAttempts.delete(attempted))
    heldAttempts.add(attempted)
  }
  /** The value of enqueuedUnheld this replica last looked for deliveries at. */
  let unheldSeen = enqueuedUnheld
  /** After a commit: deliveries this replica holds are already under way; only others need a pass. */
  const kick = (): void => {
    if (unheldSeen === enqueuedUnheld) return
    unheldSeen = enqueuedUnheld
    run()
  }

  let recountTimer: NodeJS.Timeout | undefined
  return {
    name: 'outbox',
    start() {
      if (started || stopped) return
      started = true
      localOutboxes.set(options.db, { leaseMs, attemptHeld })
      recountTimer = setInterval(recount, DEAD_RECOUNT_MS)
      recountTimer.unref()
      recount()
      run()
    },
    kick,
    delivered,
    deadLetters: () => deadCount,
    passes: () => passCount,
    pending: async () =>
      Number(
        (
          await db
            .selectFrom(OUTBOX_TABLE)
            .select((eb) => eb.fn.countAll().as('n'))
            .where('delivered_at', 'is', null)
            .where('dead_at', 'is', null)
            .executeTakeFirstOrThrow()
        ).n,
      ),
    async stop() {
      stopped = true
      batch?.write()
      if (localOutboxes.get(options.db)?.attemptHeld === attemptHeld) localOutboxes.delete(options.db)
      clearTimeout(timer)
      clearInterval(recountTimer)
      wakeWaiters()
      let timeout: NodeJS.Timeout | undefined
      await Promise.race([Promise.all([running, ...heldAttempts]), new Promise<void>((resolve) => (timeout = setTimeout(resolve, stopWaitMs)))])
      clearTimeout(timeout)
      if (inFlight.size === 0) return
      // Still attempting (a peer slow to answer): hand the leases back, so another replica (or
      // this service after its restart) takes them now rather than when the lease runs out.
      const unfinished = [...inFlight]
      await db
        .updateTable(OUTBOX_TABLE)
        .set({ next_attempt_at: sql`now()` })
        .where('delivery_id', 'in', unfinished)
        .where('delivered_at', 'is', null)
        .where('dead_at', 'is', null)
        .execute()
        .then(
          () => options.log.info({ deliveries: unfinished.length }, 'outbox stopped with attempts in flight; their leases were handed back'),
          (error: unknown) => options.log.warn({ err: error }, 'handing outbox leases back failed; they expire after CLOUDPAY_OUTBOX_LEASE_MS'),
        )
    },
  }
}
