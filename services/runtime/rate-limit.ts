// A token bucket per (limit, caller) for RPCs that clients might poll, held in the service's own
// database so every replica sharing it takes from the same bucket: N replicas allow the limit,
// not N times it. One statement per call, atomic under concurrency (INSERT ... ON CONFLICT DO
// UPDATE locks the row; a concurrent taker re-evaluates against the updated bucket): the bucket
// is refilled for the time since its last take and a token taken only if one is there. A missing
// row is a full bucket, so rows idle longer than a refill are purged (rateLimitPurge).
import { type Kysely, sql } from 'kysely'
import { ResourceExhaustedError } from './errors.ts'
import type { Purge } from './retention.ts'

export const RATE_LIMIT_TABLE = 'rate_limits'

export interface RateLimitsTable {
  /** The limit, e.g. GetLogin. */
  name: string
  /** Whose bucket: the caller, role/id. */
  subject: string
  /** Tokens left at updated_at (fractional: refills continuously). */
  tokens: number
  updated_at: Date
}

type LimitsDb = Kysely<{ [RATE_LIMIT_TABLE]: RateLimitsTable }>

/** Part of a service's migrations. */
export async function createRateLimitTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(RATE_LIMIT_TABLE)
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('tokens', 'float8', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('rate_limits_pk', ['name', 'subject'])
    .execute()
  await db.schema.createIndex('rate_limits_updated_at').on(RATE_LIMIT_TABLE).column('updated_at').execute()
}

/** Rows untouched this long are purged; every limiter's bucket must refill within it. */
export const RATE_LIMIT_IDLE_MS = 10 * 60_000

export class SharedRateLimiter {
  private readonly db: LimitsDb

  constructor(
    db: Kysely<any>,
    private readonly name: string,
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new Error(`rate limit ${name}: needs perSecond > 0 and burst >= 1`)
    if ((burst / perSecond) * 1000 > RATE_LIMIT_IDLE_MS) throw new Error(`rate limit ${name}: a bucket must refill within ${RATE_LIMIT_IDLE_MS} ms (purged rows count as full)`)
    this.db = db as LimitsDb
  }

  /** Takes one token for `subject` or throws RESOURCE_EXHAUSTED with the time to wait (RetryInfo). */
  async take(subject: string, what: string, now = new Date()): Promise<void> {
    const at = sql`${now.toISOString()}::timestamptz`
    // The bucket as it stands at `now`; the table's own name is how ON CONFLICT refers to the stored row.
    const refilled = sql<number>`least(${this.burst}::float8, rate_limits.tokens + greatest(0::float8, extract(epoch from (${at} - rate_limits.updated_at))::float8) * ${this.perSecond}::float8)`
    const taken = await this.db
      .insertInto(RATE_LIMIT_TABLE)
      .values({ name: this.name, subject, tokens: this.burst - 1, updated_at: now })
      .onConflict((oc) =>
        oc
          .columns(['name', 'subject'])
          // A clock behind another replica's never moves the bucket back in time.
          .doUpdateSet({ tokens: sql`${refilled} - 1`, updated_at: sql`greatest(rate_limits.updated_at, ${at})` })
          .where(sql<boolean>`${refilled} >= 1`),
      )
      .returning('tokens')
      .executeTakeFirst()
    if (taken) return
    const row = await this.db.selectFrom(RATE_LIMIT_TABLE).select(['tokens', 'updated_at']).where('name', '=', this.name).where('subject', '=', subject).executeTakeFirst()
    const tokens = row ? Math.min(this.burst, row.tokens + (Math.max(0, now.getTime() - row.updated_at.getTime()) / 1000) * this.perSecond) : 0
    const waitMs = (Math.max(0, 1 - tokens) / this.perSecond) * 1000
    throw new ResourceExhaustedError('RATE_LIMITED', `${what} is limited to ${this.perSecond} calls per second; wait for events instead of polling`, waitMs)
  }
}

/** Buckets untouched for RATE_LIMIT_IDLE_MS: full again, so the row means what no row means. */
export function rateLimitPurge(db: Kysely<any>): Purge {
  const limits = db as LimitsDb
  return {
    name: RATE_LIMIT_TABLE,
    windowMs: RATE_LIMIT_IDLE_MS,
    async deleteBatch(cutoff, limit) {
      const result = await limits
        .deleteFrom(RATE_LIMIT_TABLE)
        .where((eb) =>
          eb(
            eb.refTuple('name', 'subject'),
            'in',
            eb.selectFrom(RATE_LIMIT_TABLE).select(['name', 'subject']).where('updated_at', '<', cutoff).limit(limit).forUpdate().skipLocked().$asTuple('name', 'subject'),
          ),
        )
        .executeTakeFirst()
      return Number(result.numDeletedRows)
    },
  }
}
