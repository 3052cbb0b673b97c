// Row types of the payment_management schema. The flow's tables arrive with the payment issue.
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export interface PaymentDatabase {
  idempotency_keys: IdempotencyKeysTable
}
