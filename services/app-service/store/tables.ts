// Row types of the app_service schema.
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export interface CatalogItemsTable {
  item_id: string
  title: string
  currency_code: string
  /** Minor units per unit. */
  unit_price_minor: bigint
  /** Discount per unit, minor units. */
  unit_discount_minor: bigint
}

export interface AppDatabase {
  catalog_items: CatalogItemsTable
  idempotency_keys: IdempotencyKeysTable
}
