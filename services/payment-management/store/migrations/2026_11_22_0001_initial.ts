// The payment_management schema's first migration: request-id bookkeeping (AIP-155).
import type { Kysely } from 'kysely'
import { createIdempotencyTable } from '../../../runtime/idempotency.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await createIdempotencyTable(db)
}
