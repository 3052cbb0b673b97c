// Migrations of the payment_platform schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as ledger from './2026_11_22_0002_ledger.ts'
import * as resultKeys from './2026_12_01_0003_result_keys.ts'
import * as sealedRelay from './2026_12_01_1001_sealed_relay.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_ledger': ledger,
  '2026_12_01_0003_result_keys': resultKeys,
  '2026_12_01_1001_sealed_relay': sealedRelay,
}
