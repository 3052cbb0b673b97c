// Row types of the payment_platform schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'
import type { OutboxTable } from '../../runtime/outbox.ts'

export type AccountKindColumn = 'payer' | 'collection' | 'issuance' | 'reserve'
export type TransactionStateColumn = 'pending' | 'succeeded' | 'cancelled' | 'refunded'

export interface AccountsTable {
  platform_id: string
  /** Keyed hash of the account number: how rows are found without storing the number in clear. */
  account_ref: string
  sealed_number: Uint8Array
  masked_number: string
  kind: AccountKindColumn
  merchant_id: string | null
  currency_code: string
  balance_minor: Generated<bigint>
  /** Argon2id PHC string of the payment password (payer accounts). */
  password_hash: string | null
  failed_attempts: Generated<number>
  locked_until: Date | null
  created_at: Generated<Date>
}

export interface TransactionsTable {
  serial_number: string
  platform_id: string
  state: TransactionStateColumn
  amount_minor: bigint
  currency_code: string
  payer_ref: string
  masked_payer: string
  collection_ref: string
  collection_account: string
  merchant_id: string
  merchant_order_id: string
  description: string
  created_at: Generated<Date>
  expires_at: Date
  /** When it was paid (or cancelled); a refund keeps it. */
  completed_at: Date | null
  /** When a paid transaction was refunded. */
  refunded_at: Generated<Date | null>
  /** The result key this transaction's payment result is signed with (null only for rows from before keys). */
  result_key_id: string | null
  /** The terminal the prepay was made for: the only terminal that may pay or read it. */
  terminal_id: string | null
}

export interface ResultKeysTable {
  key_id: string
  platform_id: string
  /** DER SubjectPublicKeyInfo (Ed25519). */
  public_key: Uint8Array
  /** PKCS#8 DER private key, sealed with the data key (the key id as associated data). */
  sealed_private_key: Uint8Array
  created_at: Generated<Date>
}

export interface SealingKeysTable {
  key_id: string
  platform_id: string
  /** HPKE-serialized X25519 public key (32 bytes). */
  public_key: Uint8Array
  /** The HPKE-serialized private key, sealed with the data key (the key id as associated data). */
  sealed_private_key: Uint8Array
  /** Replaced after CLOUDPAY_SEALING_KEY_ROTATION_MS, accepted CLOUDPAY_SEALING_KEY_GRACE_MS longer. */
  created_at: Generated<Date>
}

export type SealedBlobOutcome = 'paid' | 'wrong_password'

export interface SealedBlobsTable {
  /** SHA-256 (base64url) of a sealed blob that paid or was counted as a wrong password: never used again. */
  digest: string
  platform_id: string
  serial_number: string
  outcome: SealedBlobOutcome
  created_at: Generated<Date>
}

export interface LedgerEntriesTable {
  entry_id: Generated<bigint>
  platform_id: string
  journal_id: string
  serial_number: string | null
  account_ref: string
  masked_number: string
  delta_minor: bigint
  currency_code: string
  created_at: Generated<Date>
}

/** A merchant collection account at a platform, held by one mesh identity (docs/design.md, offline codes). */
export interface PayeesTable {
  platform_id: string
  payee_id: string
  collection_ref: string
  collection_account: string
  /** "terminal/<id>" or "service/<name>": the only caller that publishes its keys and redeems for it. */
  holder: string
  currency_code: string
  created_at: Generated<Date>
}

export interface PayeeKeysTable {
  key_id: string
  platform_id: string
  payee_id: string
  /** HPKE-serialized X25519 public key (32 bytes); the private half never reaches the platform. */
  public_key: Uint8Array
  /** Accepted until created + CLOUDPAY_PAYEE_KEY_ROTATION_MS + CLOUDPAY_PAYEE_KEY_GRACE_MS. */
  created_at: Generated<Date>
}

export type OfflineCredentialStateColumn = 'active' | 'revoked' | 'expired'

/** An offline credential; its secret is derived from the data key and the id, never stored. */
export interface OfflineCredentialsTable {
  credential_id: string
  platform_id: string
  /** The terminal that provisioned it: the only one that lists or revokes it. */
  terminal_id: string
  payer_ref: string
  masked_payer: string
  currency_code: string
  per_code_cap_minor: bigint
  allowance_minor: bigint
  /** What is left in the reserve for it; zero once ended. */
  remaining_minor: bigint
  /** The highest counter redeemed (0 before any). */
  highest_counter: Generated<bigint>
  counter_window: number
  not_before: Date
  not_after: Date
  state: OfflineCredentialStateColumn
  /** When it was revoked or its rest released after expiry. */
  ended_at: Date | null
  created_at: Generated<Date>
}

export interface OfflineRedemptionsTable {
  redemption_id: string
  credential_id: string
  counter: bigint
  platform_id: string
  payee_id: string
  amount_minor: bigint
  currency_code: string
  generated_at: Date
  redeemed_at: Generated<Date>
}

/** Where a removed terminal's latest enrolment ended (rental-boundary.ts). */
export interface EndedEnrolmentsTable {
  terminal_id: string
  ended_at: Date
}

export interface PlatformDatabase {
  payees: PayeesTable
  payee_keys: PayeeKeysTable
  offline_credentials: OfflineCredentialsTable
  offline_redemptions: OfflineRedemptionsTable
  ended_enrolments: EndedEnrolmentsTable
  accounts: AccountsTable
  transactions: TransactionsTable
  ledger_entries: LedgerEntriesTable
  result_keys: ResultKeysTable
  sealing_keys: SealingKeysTable
  sealed_blobs: SealedBlobsTable
  outbox: OutboxTable
  idempotency_keys: IdempotencyKeysTable
}
