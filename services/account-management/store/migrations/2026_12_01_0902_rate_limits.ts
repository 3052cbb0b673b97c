// Rate-limit buckets (runtime/rate-limit.ts) held in the database, shared by every replica.
import type { Kysely } from 'kysely'
import { createRateLimitTable } from '../../../runtime/rate-limit.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await createRateLimitTable(db)
}
