// An order past its deadline whose prepay the platform reports paid (or could not be asked about)
// is not expired; it is looked at again no sooner than expiry_recheck_at, so such orders never
// crowd out the other orders due to expire.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('orders').addColumn('expiry_recheck_at', 'timestamptz').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('orders').dropColumn('expiry_recheck_at').execute()
}
