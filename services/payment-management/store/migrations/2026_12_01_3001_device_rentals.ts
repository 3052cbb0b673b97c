// When each device's current rental began: the release (or re-rent) that ended the one before, as
// CancelDeviceOrders tells it. An instance and its terminals read only the orders of the rental
// they serve; the previous renter's purchases are not the next renter's to see.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('device_rentals')
    .addColumn('device_id', 'text', (c) => c.primaryKey())
    .addColumn('began_at', 'timestamptz', (c) => c.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('device_rentals').execute()
}
