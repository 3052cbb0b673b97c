// Row types of the account_management schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'
import type { OutboxTable } from '../../runtime/outbox.ts'
import type { RateLimitsTable } from '../../runtime/rate-limit.ts'

export interface CloudAccountsTable {
  account_id: string
  /** Argon2id PHC string; the password itself is never stored. */
  password_hash: string
  created_at: Generated<Date>
}

export interface InstanceAssignmentsTable {
  device_id: string
  account_id: string
  /** This rental of the device: new on every assignment, named by what is granted under it. */
  assignment_id: string
  assigned_at: Generated<Date>
}

/** 'ended': the device was released or re-rented before the login was redeemed. */
export type LoginStateColumn = 'pending' | 'verified' | 'rejected' | 'redeemed' | 'ended'

export interface LoginsTable {
  login_id: string
  device_id: string
  account_id: string
  /** The assignment the login was started under; null for logins older than assignment ids. */
  assignment_id: string | null
  /** Shown on the instance's screen; typed by the person on the terminal. */
  binding_code: string
  state: LoginStateColumn
  created_at: Generated<Date>
  expires_at: Date
  updated_at: Generated<Date>
}

export interface LoginTokensTable {
  /** SHA-256 of the token (base64url); the token itself is never stored. */
  token_hash: string
  login_id: string
  device_id: string
  account_id: string
  /** The assignment of the login it was redeemed from; null for tokens older than assignment ids. */
  assignment_id: string | null
  created_at: Generated<Date>
  expires_at: Date
  consumed_at: Date | null
  /** Set when the device was released or re-rented before the token was used. */
  ended_at: Date | null
}

/** Failed credential checks count per account, and per device (logins) or terminal (enrolments). */
export type ThrottleScope = 'account' | 'device' | 'terminal'

export interface LoginFailuresTable {
  scope: ThrottleScope
  subject: string
  failures: number
  first_failure_at: Date
  locked_until: Date | null
}

export interface AppAccountBindingsTable {
  account_id: string
  app_account_id: string
  bound_at: Generated<Date>
}

export interface PaymentBindingsTable {
  binding_id: string
  account_id: string
  platform_id: string
  /** Keyed hash of the payer account number. */
  payer_ref: string
  sealed_payer: Uint8Array
  masked_payer: string
  is_default: Generated<boolean>
  seq: Generated<bigint>
  bound_at: Generated<Date>
}

/** A terminal enrolled in a cloud account: one account at a time per terminal. */
export interface AccountTerminalsTable {
  /** The terminal's mesh certificate id. */
  terminal_id: string
  account_id: string
  /** New on each enrolment: what the end of this enrolment is told under (TERMINAL_REMOVED). */
  enrollment_id: string
  display_name: string
  /** Enrolment order, for stable pages. */
  seq: Generated<bigint>
  enrolled_at: Generated<Date>
  /** Kept to the minute: a terminal following its stream or claiming moves it at most once a minute. */
  last_seen_at: Generated<Date>
}

export interface AccountDatabase {
  account_terminals: AccountTerminalsTable
  payment_bindings: PaymentBindingsTable
  logins: LoginsTable
  login_tokens: LoginTokensTable
  login_failures: LoginFailuresTable
  app_account_bindings: AppAccountBindingsTable
  cloud_accounts: CloudAccountsTable
  instance_assignments: InstanceAssignmentsTable
  idempotency_keys: IdempotencyKeysTable
  outbox: OutboxTable
  rate_limits: RateLimitsTable
}
