// The catalog, seeded with a few items (the demo application's shop).
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import { createIdempotencyTable } from '../../../runtime/idempotency.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('catalog_items')
    .addColumn('item_id', 'text', (c) => c.primaryKey())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('currency_code', 'text', (c) => c.notNull().check(sql`currency_code ~ '^[A-Z]{3}$'`))
    .addColumn('unit_price_minor', 'bigint', (c) => c.notNull().check(sql`unit_price_minor > 0`))
    .addColumn('unit_discount_minor', 'bigint', (c) =>
      c
        .notNull()
        .defaultTo(0)
        .check(sql`unit_discount_minor >= 0 and unit_discount_minor < unit_price_minor`),
    )
    .execute()
  await db
    .insertInto('catalog_items')
    .values([
      { item_id: 'gem-pack-100', title: 'Gem pack (100)', currency_code: 'USD', unit_price_minor: 499n, unit_discount_minor: 0n },
      { item_id: 'gem-pack-550', title: 'Gem pack (550)', currency_code: 'USD', unit_price_minor: 1999n, unit_discount_minor: 200n },
      { item_id: 'season-pass', title: 'Season pass', currency_code: 'USD', unit_price_minor: 999n, unit_discount_minor: 100n },
    ])
    .execute()
  await createIdempotencyTable(db)
}
