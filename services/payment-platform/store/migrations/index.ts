// Migrations of the payment_platform schema, in order. Frozen once landed: add, never edit.
import type { Migration } from '../../../runtime/database.ts'
import * as initial from './2026_11_22_0001_initial.ts'
import * as ledger from './2026_11_22_0002_ledger.ts'
import * as resultKeys from './2026_12_01_0003_result_keys.ts'
import * as outboxDeadLetters from './2026_12_01_0004_outbox_dead_letters.ts'
import * as refundedAt from './2026_12_01_0005_refunded_at.ts'
import * as retention from './2026_12_01_0901_retention.ts'
import * as sealedRelay from './2026_12_01_1001_sealed_relay.ts'
import * as sealedBlobsAge from './2026_12_01_1002_sealed_blobs_age.ts'
import * as offlineCodes from './2026_12_01_1101_offline_codes.ts'
import * as endedEnrolments from './2026_12_01_1201_ended_enrolments.ts'

export const migrations: Record<string, Migration> = {
  '2026_11_22_0001_initial': initial,
  '2026_11_22_0002_ledger': ledger,
  '2026_12_01_0003_result_keys': resultKeys,
  '2026_12_01_0004_outbox_dead_letters': outboxDeadLetters,
  '2026_12_01_0005_refunded_at': refundedAt,
  '2026_12_01_0901_retention': retention,
  '2026_12_01_1001_sealed_relay': sealedRelay,
  '2026_12_01_1002_sealed_blobs_age': sealedBlobsAge,
  '2026_12_01_1101_offline_codes': offlineCodes,
  '2026_12_01_1201_ended_enrolments': endedEnrolments,
}
