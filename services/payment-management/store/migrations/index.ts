// Migrations of the payment_management schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as orders from './2026_11_22_0002_orders.ts'
import * as orderTrace from './2026_11_22_0003_order_trace.ts'
import * as resultKeys from './2026_12_01_0004_result_keys.ts'
import * as outboxDeadLetters from './2026_12_01_0005_outbox_dead_letters.ts'
import * as expiryRecheck from './2026_12_01_0006_expiry_recheck.ts'
import * as retention from './2026_12_01_0901_retention.ts'
import * as orderClaims from './2026_12_01_2001_order_claims.ts'
import * as deviceRentals from './2026_12_01_3001_device_rentals.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_orders': orders,
  '2026_11_22_0003_order_trace': orderTrace,
  '2026_12_01_0004_result_keys': resultKeys,
  '2026_12_01_0005_outbox_dead_letters': outboxDeadLetters,
  '2026_12_01_0006_expiry_recheck': expiryRecheck,
  '2026_12_01_0901_retention': retention,
  '2026_12_01_2001_order_claims': orderClaims,
  '2026_12_01_3001_device_rentals': deviceRentals,
}
