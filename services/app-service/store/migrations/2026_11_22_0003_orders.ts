// Orders, inventories, and where the shop collects its money on each payment platform.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('collection_accounts')
    .addColumn('platform_id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('collection_account', 'text', (c) => c.notNull())
    .execute()
  await db
    .insertInto('collection_accounts')
    .values([
      { platform_id: 'alphapay', merchant_id: 'demo-shop', collection_account: 'SHOPALPHA0001' },
      { platform_id: 'betapay', merchant_id: 'demo-shop', collection_account: 'SHOPBETA0001' },
    ])
    .execute()
  await db.schema
    .createTable('app_orders')
    .addColumn('app_order_id', 'text', (c) => c.primaryKey())
    .addColumn('app_account_id', 'text', (c) => c.notNull().references('app_accounts.app_account_id'))
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('item_id', 'text', (c) => c.notNull().references('catalog_items.item_id'))
    .addColumn('quantity', 'integer', (c) => c.notNull().check(sql`quantity between 1 and 100`))
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('unit_price_minor', 'bigint', (c) => c.notNull())
    .addColumn('discount_minor', 'bigint', (c) => c.notNull())
    .addColumn('amount_due_minor', 'bigint', (c) => c.notNull().check(sql`amount_due_minor > 0`))
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'effective', 'rejected')`))
    .addColumn('payment_order_id', 'text')
    .addColumn('platform_id', 'text')
    .addColumn('serial_number', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('effective_at', 'timestamptz')
    .execute()
  await db.schema
    .createTable('inventory')
    .addColumn('app_account_id', 'text', (c) => c.notNull().references('app_accounts.app_account_id'))
    .addColumn('item_id', 'text', (c) => c.notNull())
    .addColumn('quantity', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('inventory_pk', ['app_account_id', 'item_id'])
    .execute()
}
