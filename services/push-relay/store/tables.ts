// Row types of the push_relay schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export interface WakesTable {
  /** Arrival order, for stable newest-first pages. */
  seq: Generated<bigint>
  wake_id: Generated<string>
  terminal_id: string
  /** EventKind name without its prefix, e.g. PAYMENT_PUSHED. */
  kind: string
  subject_id: string
  /** Who asked, role/id of its mesh identity. */
  requested_by: string
  created_at: Generated<Date>
}

export interface PushRelayDatabase {
  wakes: WakesTable
  idempotency_keys: IdempotencyKeysTable
}
