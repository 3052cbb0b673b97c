// Row types of the app_service schema.
import type { Generated } from 'kysely'
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

/** The application's save data of an account. */
export interface Archive {
  level: number
  coins: number
}

export interface AppAccountsTable {
  app_account_id: string
  display_name: string
  archive: Archive
  created_at: Generated<Date>
}

export interface AppSessionsTable {
  /** SHA-256 of the session token (base64url). */
  token_hash: string
  app_account_id: string
  device_id: string
  /** The assignment (rental of the device) the login token was granted under; '' before it was recorded. */
  assignment_id: Generated<string>
  created_at: Generated<Date>
  expires_at: Date
  /** Set when the device was released or re-rented: the session is over. */
  ended_at: Date | null
}

/**
 * The assignments of a device this service has seen: a row per assignment that opened a session
 * or was ended. A set ended_at is the tombstone: no session or order is opened for it any more.
 */
export interface DeviceAssignmentsTable {
  device_id: string
  assignment_id: string
  created_at: Generated<Date>
  ended_at: Date | null
}

export interface CollectionAccountsTable {
  platform_id: string
  merchant_id: string
  collection_account: string
}

export type AppOrderStateColumn = 'pending' | 'effective' | 'rejected'

export interface AppOrdersTable {
  app_order_id: string
  app_account_id: string
  device_id: string
  /** The assignment of the session that placed it; '' before it was recorded. */
  assignment_id: Generated<string>
  item_id: string
  quantity: number
  currency_code: string
  unit_price_minor: bigint
  discount_minor: bigint
  amount_due_minor: bigint
  description: string
  state: AppOrderStateColumn
  payment_order_id: string | null
  platform_id: string | null
  serial_number: string | null
  created_at: Generated<Date>
  effective_at: Date | null
}

export interface InventoryTable {
  app_account_id: string
  item_id: string
  quantity: bigint
}

export interface AppDatabase {
  collection_accounts: CollectionAccountsTable
  app_orders: AppOrdersTable
  inventory: InventoryTable
  app_accounts: AppAccountsTable
  app_sessions: AppSessionsTable
  device_assignments: DeviceAssignmentsTable
  catalog_items: CatalogItemsTable
  idempotency_keys: IdempotencyKeysTable
}
