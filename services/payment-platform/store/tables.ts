// Row types of the payment_platform schema. The flow's tables arrive with the payment issue.
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export interface PlatformDatabase {
  idempotency_keys: IdempotencyKeysTable
}
