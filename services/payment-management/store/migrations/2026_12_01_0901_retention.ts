// What the retention purge (runtime/retention.ts) looks rows up by: delivered outbox rows
// (answered request ids already have idempotency_keys_created_at).
import type { Kysely } from 'kysely'
import { createDeliveredOutboxIndex } from '../../../runtime/retention.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await createDeliveredOutboxIndex(db)
}
