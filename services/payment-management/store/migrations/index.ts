// Migrations of the payment_management schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as orders from './2026_11_22_0002_orders.ts'
import * as orderTrace from './2026_11_22_0003_order_trace.ts'
import * as resultKeys from './2026_12_01_0004_result_keys.ts'
import * as orderClaims from './2026_12_01_2001_order_claims.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_orders': orders,
  '2026_11_22_0003_order_trace': orderTrace,
  '2026_12_01_0004_result_keys': resultKeys,
  '2026_12_01_2001_order_claims': orderClaims,
}
