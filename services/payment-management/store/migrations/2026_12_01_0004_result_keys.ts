// The platform's result key for each prepaid order: a payment result is accepted only when
// signed with the key the platform returned when it created that order's prepay.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('orders').addColumn('result_key_id', 'text').addColumn('result_public_key', 'bytea').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('orders').dropColumn('result_key_id').dropColumn('result_public_key').execute()
}
