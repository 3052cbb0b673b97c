// Orders keyed by device (payment steps 1-6) and the outbox of hand-offs to the application,
// refunds and cancellations at platforms, and pipe events.
import { type Kysely, sql } from 'kysely'
import { createOutboxTable } from '../../../runtime/outbox.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('orders')
    .addColumn('order_id', 'text', (c) => c.primaryKey())
    .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('app_order_id', 'text', (c) => c.notNull().unique())
    .addColumn('state', 'text', (c) =>
      c.notNull().check(sql`state in ('submitted', 'fetched', 'awaiting_payment', 'paid', 'effective', 'failed', 'cancelled', 'expired', 'refunded')`),
    )
    .addColumn('amount_minor', 'bigint', (c) => c.notNull().check(sql`amount_minor > 0`))
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('collection_accounts', 'jsonb', (c) => c.notNull())
    .addColumn('platform_id', 'text')
    .addColumn('serial_number', 'text')
    .addColumn('submitted_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('fetched_at', 'timestamptz')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('end_reason', 'text', (c) => c.notNull().defaultTo(''))
    .addUniqueConstraint('orders_platform_serial', ['platform_id', 'serial_number'])
    .execute()
  await db.schema.createIndex('orders_device_state').on('orders').columns(['device_id', 'state', 'seq']).execute()
  await db.schema.createIndex('orders_expiry').on('orders').columns(['state', 'expires_at']).execute()
  await createOutboxTable(db)
}
