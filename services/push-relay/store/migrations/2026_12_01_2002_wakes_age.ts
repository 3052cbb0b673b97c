// Recorded wakes are purged by age (retention.ts): the purge needs their creation time indexed.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('wakes_created_at').on('wakes').column('created_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('wakes_created_at').execute()
}
