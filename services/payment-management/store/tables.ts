// Row types of the payment_management schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'
import type { OutboxTable } from '../../runtime/outbox.ts'

export type OrderStateColumn = 'submitted' | 'fetched' | 'awaiting_payment' | 'paid' | 'effective' | 'failed' | 'cancelled' | 'expired' | 'refunded'

export interface OrdersTable {
  order_id: string
  /** Arrival order: the terminal fetches the earliest first. */
  seq: Generated<bigint>
  device_id: string
  app_order_id: string
  state: OrderStateColumn
  amount_minor: bigint
  currency_code: string
  description: string
  merchant_id: string
  /** The merchant's collection account per platform id. */
  collection_accounts: Record<string, string>
  platform_id: string | null
  serial_number: string | null
  submitted_at: Generated<Date>
  fetched_at: Date | null
  updated_at: Generated<Date>
  expires_at: Date
  end_reason: Generated<string>
  /** The order's trace context (traceparent and baggage), continued by every later step. */
  trace_context: Generated<string>
  /** The platform's result key for this order's prepay (id and DER public key); null before prepay. */
  result_key_id: string | null
  result_public_key: Uint8Array | null
  /** Past its deadline but paid at the platform (or the platform out of reach): not looked at for expiry again before this. */
  expiry_recheck_at: Generated<Date | null>
  /** The enrolled terminal that claimed the pushed order (ClaimOrder); null unless claimed. */
  claimed_by: Generated<string | null>
  /** The gesture it was claimed with, for audit: tap, slide or lift. */
  claim_gesture: Generated<string | null>
  claimed_at: Generated<Date | null>
}

/** The start of each released device's current rental (the latest release's time). */
export interface DeviceRentalsTable {
  device_id: string
  began_at: Date
}

export interface PaymentDatabase {
  orders: OrdersTable
  device_rentals: DeviceRentalsTable
  outbox: OutboxTable
  idempotency_keys: IdempotencyKeysTable
}
