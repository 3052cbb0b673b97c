// Row types of the account_management schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export interface CloudAccountsTable {
  account_id: string
  /** Argon2id PHC string; the password itself is never stored. */
  password_hash: string
  created_at: Generated<Date>
}

export interface InstanceAssignmentsTable {
  device_id: string
  account_id: string
  assigned_at: Generated<Date>
}

export interface AccountDatabase {
  cloud_accounts: CloudAccountsTable
  instance_assignments: InstanceAssignmentsTable
  idempotency_keys: IdempotencyKeysTable
}
