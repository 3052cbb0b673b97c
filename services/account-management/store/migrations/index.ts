// Migrations of the account_management schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as login from './2026_11_22_0002_login.ts'
import * as paymentBindings from './2026_11_22_0003_payment_bindings.ts'
import * as assignmentGrants from './2026_11_23_0001_assignment_grants.ts'
import * as outboxDeadLetters from './2026_12_01_0001_outbox_dead_letters.ts'
import * as retention from './2026_12_01_0901_retention.ts'
import * as rateLimits from './2026_12_01_0902_rate_limits.ts'
import * as accountTerminals from './2026_12_01_2001_account_terminals.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_login': login,
  '2026_11_22_0003_payment_bindings': paymentBindings,
  '2026_11_23_0001_assignment_grants': assignmentGrants,
  '2026_12_01_0001_outbox_dead_letters': outboxDeadLetters,
  '2026_12_01_0901_retention': retention,
  '2026_12_01_0902_rate_limits': rateLimits,
  '2026_12_01_2001_account_terminals': accountTerminals,
}
