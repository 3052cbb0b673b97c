// Migrations of the app_service schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as accounts from './2026_11_22_0002_accounts.ts'
import * as orders from './2026_11_22_0003_orders.ts'
import * as deviceAssignments from './2026_11_23_0001_device_assignments.ts'
import * as retention from './2026_12_01_0901_retention.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_accounts': accounts,
  '2026_11_22_0003_orders': orders,
  '2026_11_23_0001_device_assignments': deviceAssignments,
  '2026_12_01_0901_retention': retention,
}
