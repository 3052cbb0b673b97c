// Where each device's current rental begins in its stream: the newest sequence published before
// the release (or re-rent) that ended the rental before, as CloseDeviceChannels tells it. The
// device's instance and terminals read only the events after it.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('device_streams')
    .addColumn('rental_floor', 'bigint', (c) => c.notNull().defaultTo(0))
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('device_streams').dropColumn('rental_floor').execute()
}
