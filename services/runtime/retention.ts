// Retention: every service forgets what it no longer needs, as background work of each replica.
// Each kind of row has a window past its own reference time (first call, delivery, expiry, end)
// and is deleted in bounded batches, one short statement each, yielding to the event loop in
// between: PGlite does not yield while queries are chained (TRAPS.md), so an unbroken purge
// would hold up every gRPC call of the process. Work still in progress is never a candidate,
// however old: each kind's statement selects only finished rows (an answered request id, a
// delivered outbox row, an expired login). Replicas purge side by side: rows another replica is
// deleting are skipped (FOR UPDATE SKIP LOCKED), not waited for.
//
// Not purged, deliberately: PaymentPlatform's transactions and ledger entries and
// PaymentManagement's orders (the financial record), accounts and bindings, result keys (old
// results stay verifiable), device stream heads (sequence numbers are never reused).
import { type Kysely, sql } from 'kysely'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import { IDEMPOTENCY_TABLE, type IdempotencyKeysTable } from './idempotency.ts'
import type { Logger } from './logger.ts'
import { OUTBOX_TABLE, type OutboxTable } from './outbox.ts'
import { isSweeper, type Sweeper, sweeper, type Worker } from './workers.ts'

/** Rows deleted by one statement. */
export const PURGE_BATCH_ROWS = 500

/** One kind of row a service forgets. */
export interface Purge {
  /** What it deletes, for logs and counts (e.g. `idempotency_keys`). */
  readonly name: string
  /** How long past its reference time a row is kept. */
  readonly windowMs: number
  /** Deletes up to `limit` finished rows whose reference time is before `cutoff`, in one statement; returns how many. */
  deleteBatch(cutoff: Date, limit: number): Promise<number>
}

/** Rows deleted per kind in one pass. */
export type PurgeCounts = Record<string, number>

export interface PurgeOptions {
  /** The time windows are measured back from (tests pass their own). */
  readonly now?: Date
  readonly batchRows?: number
  /** Stops between batches (a shutdown). */
  readonly signal?: AbortSignal
}

/** Deletes every row of a kind past its window, batch by batch, yielding between batches. */
export async function purge(kind: Purge, options: PurgeOptions = {}): Promise<number> {
  const limit = options.batchRows ?? PURGE_BATCH_ROWS
  const cutoff = new Date((options.now ?? new Date()).getTime() - kind.windowMs)
  let total = 0
  while (!options.signal?.aborted) {
    const deleted = await kind.deleteBatch(cutoff, limit)
    total += deleted
    if (deleted < limit) break
    await yieldToEventLoop()
  }
  return total
}

/**
 * One pass over several kinds, in order (a kind that references another's rows comes first).
 * A kind that fails is reported to `onError` and the pass goes on with the next.
 */
export async function purgeAll(kinds: readonly Purge[], options: PurgeOptions & { onError?: (kind: Purge, error: unknown) => void } = {}): Promise<PurgeCounts> {
  const counts: PurgeCounts = {}
  for (const kind of kinds) {
    if (options.signal?.aborted) break
    try {
      counts[kind.name] = (counts[kind.name] ?? 0) + (await purge(kind, options))
    } catch (error) {
      if (!options.onError) throw error
      options.onError(kind, error)
    }
    await yieldToEventLoop()
  }
  return counts
}

export type RetentionWorker = Sweeper<PurgeCounts>

/** The worker name the host looks for (RunningService.retention: tests run a pass with runNow). */
export const RETENTION_WORKER = 'retention'

export const isRetentionWorker = (worker: Worker): worker is RetentionWorker => worker.name === RETENTION_WORKER && isSweeper(worker)

/** A service's purge, every CLOUDPAY_RETENTION_INTERVAL_MS: each kind in turn, in bounded batches, windows measured back from its clock. */
export function retentionWorker(deps: { readonly config: Config; readonly log: Logger; readonly clock: Clock }, kinds: readonly Purge[]): RetentionWorker {
  return sweeper({
    name: RETENTION_WORKER,
    intervalMs: deps.config.retention.intervalMs,
    log: deps.log,
    run: async (signal) => {
      const counts = await purgeAll(kinds, {
        signal,
        now: deps.clock.now(),
        onError: (kind, error) => deps.log.warn({ err: error, kind: kind.name }, 'retention: purge failed; next pass retries'),
      })
      if (Object.values(counts).some((n) => n > 0)) deps.log.info({ purged: counts }, 'retention: purged rows past their window')
      return counts
    },
  })
}

/**
 * Answered request ids (their response is stored) first called before the cutoff. A key that is
 * claimed but not answered yet (its call in flight) has an empty response and is never taken.
 * Uses the idempotency_keys_created_at index of every service's first migration.
 */
export function idempotencyPurge(db: Kysely<any>, windowMs: number): Purge {
  const keys: Kysely<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }> = db
  return {
    name: IDEMPOTENCY_TABLE,
    windowMs,
    async deleteBatch(cutoff, limit) {
      const result = await keys
        .deleteFrom(IDEMPOTENCY_TABLE)
        .where((eb) =>
          eb(
            eb.refTuple('caller', 'request_id'),
            'in',
            eb
              .selectFrom(IDEMPOTENCY_TABLE)
              .select(['caller', 'request_id'])
              .where('created_at', '<', cutoff)
              .where(sql<boolean>`octet_length(response) > 0`)
              .limit(limit)
              .forUpdate()
              .skipLocked()
              .$asTuple('caller', 'request_id'),
          ),
        )
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}

/** Outbox rows delivered before the cutoff. An undelivered row is never taken, however old. */
export function deliveredOutboxPurge(db: Kysely<any>, windowMs: number): Purge {
  const outbox: Kysely<{ [OUTBOX_TABLE]: OutboxTable }> = db
  return {
    name: OUTBOX_TABLE,
    windowMs,
    async deleteBatch(cutoff, limit) {
      const result = await outbox
        .deleteFrom(OUTBOX_TABLE)
        .where('delivery_id', 'in', (eb) =>
          eb.selectFrom(OUTBOX_TABLE).select('delivery_id').where('delivered_at', 'is not', null).where('delivered_at', '<', cutoff).limit(limit).forUpdate().skipLocked(),
        )
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}

/** The index deliveredOutboxPurge needs (a migration of each service with an outbox adds it). */
export async function createDeliveredOutboxIndex(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('outbox_delivered').on(OUTBOX_TABLE).column('delivered_at').where(sql.ref('delivered_at'), 'is not', null).execute()
}
