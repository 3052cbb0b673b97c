// Spent sealed credentials are purged by age (retention.ts): the purge needs their creation time indexed.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('sealed_blobs_created_at').on('sealed_blobs').column('created_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('sealed_blobs_created_at').execute()
}
