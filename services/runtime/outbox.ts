// Transactional outbox: a delivery is written in the same transaction as the state change that
// requires it, then sent at least once, retried with backoff until its handler succeeds. Replicas
// share the table: a delivery is leased (next_attempt_at pushed out) before it is attempted, so
// one replica works on it at a time, and no transaction stays open across the remote call.
import { type Generated, type Kysely, sql } from 'kysely'
import { randomUUID } from 'node:crypto'
import { context, SpanKind, SpanStatusCode, trace as otelTrace, type Tracer } from '@opentelemetry/api'
import type { Logger } from './logger.ts'
import { SERVICE_TRACER } from './telemetry.ts'
import { captureContext, restoreContext } from './trace-context.ts'

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

/** Where the delivery's trace context rides in its payload. */
const TRACE_FIELD = '_trace'

/**
 * Adds a delivery inside the caller's transaction; its id is the request id the receiver dedupes
 * on. The active trace context goes with it, so the delivery continues the caller's trace.
 */
export async function enqueue(trx: Kysely<any>, topic: string, payload: Record<string, string>, deliveryId: string = randomUUID()): Promise<string> {
  const stored = { ...payload, [TRACE_FIELD]: captureContext() }
  await (trx as OutboxDb)
    .insertInto(OUTBOX_TABLE)
    .values({ delivery_id: deliveryId, topic, payload: JSON.stringify(stored) as unknown as Record<string, string>, delivered_at: null, last_error: null })
    .onConflict((oc) => oc.column('delivery_id').doNothing())
    .execute()
  return deliveryId
}

/** What a handler says about one attempt: done, or try again later. Throwing also retries. */
export type DeliveryHandler = (payload: Record<string, string>, deliveryId: string, attempt: number) => Promise<void>

export interface OutboxOptions {
  readonly db: Kysely<any>
  readonly tracer: Tracer
  readonly handlers: Readonly<Record<string, DeliveryHandler>>
  readonly log: Logger
  readonly retryBaseMs: number
  readonly retryMaxMs: number
  /** How often due deliveries are looked for without a kick. */
  readonly intervalMs?: number
  /** How long an attempt may take before another replica may try again. */
  readonly leaseMs?: number
}

export interface Outbox {
  /** Looks for due deliveries now (call after committing one). */
  kick(): void
  /** Deliveries not yet delivered. */
  pending(): Promise<number>
  /**
   * Kicks, then waits until every one of these deliveries was acknowledged (by this replica or
   * another) or `timeoutMs` passed: true when all were. A delivery not in the table counts as
   * done. Waiting never stops the retries.
   */
  delivered(deliveryIds: readonly string[], timeoutMs: number): Promise<boolean>
  stop(): Promise<void>
}

/** How often a waiter re-reads the table, for deliveries another replica attempts. */
const DELIVERED_RECHECK_MS = 250

export function startOutbox(options: OutboxOptions): Outbox {
  const db = options.db as OutboxDb
  const leaseMs = options.leaseMs ?? 30_000
  let running: Promise<void> | undefined
  let again = false
  let stopped = false
  /** Waiters woken whenever this replica acknowledges a delivery; each re-reads its own. */
  const waiters = new Set<() => void>()
  const wakeWaiters = (): void => {
    for (const wake of waiters) wake()
  }

  // The query builder (not raw SQL) so the service's schema applies to the table.
  const claim = () =>
    db
      .updateTable(OUTBOX_TABLE)
      .set({ next_attempt_at: sql`now() + ${`${leaseMs} milliseconds`}::interval`, attempts: sql`attempts + 1` })
      .where('delivery_id', 'in', (eb) =>
        eb
          .selectFrom(OUTBOX_TABLE)
          .select('delivery_id')
          .where('delivered_at', 'is', null)
          .where('next_attempt_at', '<=', sql<Date>`now()`)
          .orderBy('next_attempt_at')
          .limit(20)
          .forUpdate()
          .skipLocked(),
      )
      .returning(['delivery_id', 'topic', 'payload', 'attempts'])
      .execute()

  const attempt = async (row: { delivery_id: string; topic: string; payload: Record<string, string> | string; attempts: number }): Promise<void> => {
    const { [TRACE_FIELD]: trace, ...payload } = typeof row.payload === 'string' ? (JSON.parse(row.payload) as Record<string, string>) : row.payload
    const handler = options.handlers[row.topic]
    const parent = restoreContext(trace).setValue(SERVICE_TRACER, options.tracer)
    const span = options.tracer.startSpan(
      `outbox ${row.topic}`,
      { kind: SpanKind.PRODUCER, attributes: { 'cloudpay.delivery_id': row.delivery_id, 'cloudpay.attempt': row.attempts } },
      parent,
    )
    try {
      if (!handler) throw new Error(`no handler for outbox topic ${row.topic}`)
      await context.with(otelTrace.setSpan(parent, span), () => handler(payload, row.delivery_id, row.attempts))
      await db.updateTable(OUTBOX_TABLE).set({ delivered_at: new Date(), last_error: null }).where('delivery_id', '=', row.delivery_id).execute()
      span.end()
      wakeWaiters()
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
      span.end()
      const delay = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** Math.min(row.attempts - 1, 20))
      const message = error instanceof Error ? error.message : String(error)
      options.log.warn({ topic: row.topic, delivery_id: row.delivery_id, attempt: row.attempts, retry_in_ms: delay, error: message }, 'outbox delivery failed; will retry')
      await db
        .updateTable(OUTBOX_TABLE)
        .set({ next_attempt_at: new Date(Date.now() + delay), last_error: message.slice(0, 500) })
        .where('delivery_id', '=', row.delivery_id)
        .execute()
        .catch(() => undefined)
    }
  }

  const drain = async (): Promise<void> => {
    do {
      again = false
      const rows = await claim()
      await Promise.all(rows.map(attempt))
      if (rows.length === 20) again = true
    } while (again && !stopped)
  }

  const run = (): void => {
    if (stopped) return
    if (running) {
      again = true
      return
    }
    running = drain()
      .catch((error: unknown) => options.log.warn({ err: error }, 'outbox pass failed'))
      .finally(() => {
        running = undefined
      })
  }

  const undelivered = async (ids: readonly string[]): Promise<number> =>
    ids.length === 0
      ? 0
      : Number(
          (
            await db
              .selectFrom(OUTBOX_TABLE)
              .select((eb) => eb.fn.countAll().as('n'))
              .where('delivery_id', 'in', [...ids])
              .where('delivered_at', 'is', null)
              .executeTakeFirstOrThrow()
          ).n,
        )

  const delivered = async (ids: readonly string[], timeoutMs: number): Promise<boolean> => {
    const deadline = Date.now() + timeoutMs
    run()
    for (;;) {
      // Registered before the read, so an acknowledgement between the read and the wait wakes it.
      let wake!: () => void
      const woken = new Promise<void>((resolve) => (wake = resolve))
      waiters.add(wake)
      try {
        if ((await undelivered(ids)) === 0) return true
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

  const timer = setInterval(run, options.intervalMs ?? 500)
  timer.unref()
  run()
  return {
    kick: run,
    delivered,
    pending: async () =>
      Number(
        (
          await db
            .selectFrom(OUTBOX_TABLE)
            .select((eb) => eb.fn.countAll().as('n'))
            .where('delivered_at', 'is', null)
            .executeTakeFirstOrThrow()
        ).n,
      ),
    async stop() {
      stopped = true
      clearInterval(timer)
      wakeWaiters()
      await running
    },
  }
}
