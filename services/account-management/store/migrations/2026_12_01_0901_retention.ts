// What the retention purge (runtime/retention.ts) looks rows up by: expired logins and tokens,
// failure counts by their first failure, delivered outbox rows.
import type { Kysely } from 'kysely'
import { createDeliveredOutboxIndex } from '../../../runtime/retention.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('logins_expires_at').on('logins').column('expires_at').execute()
  await db.schema.createIndex('login_tokens_expires_at').on('login_tokens').column('expires_at').execute()
  await db.schema.createIndex('login_failures_first_failure_at').on('login_failures').column('first_failure_at').execute()
  await createDeliveredOutboxIndex(db)
}
