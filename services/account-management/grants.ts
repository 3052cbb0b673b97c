// What releasing or re-renting a device ends (DESIGN: "Releasing or re-renting an instance ends
// every login, token and app session granted on that device"). Here, in the caller's transaction:
// the device's pending and verified logins and its unused login tokens. Through the outbox, in
// that same transaction, delivered at least once: the assignment's app sessions (AppService), the
// device's channels and so its terminals' Notify streams (InstanceEvents), and its unpaid orders
// (PaymentManagement).
import type { Transaction } from 'kysely'
import { derivedRequestId } from '../runtime/idempotency.ts'
import { enqueue } from '../runtime/outbox.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

type Trx = Transaction<AccountDatabase>

export const TOPICS = { endSessions: 'end-sessions', closeChannels: 'close-channels', cancelOrders: 'cancel-orders' } as const

/** What each hand-off carries: the device, the assignment that ended, and when (ISO 8601, the database's clock). */
export interface EndedAssignment {
  readonly device_id: string
  readonly assignment_id: string
  readonly ended_at: string
}

/** The outbox deliveries that end an assignment elsewhere: derived from it, so any retry or replay names the same ones. */
export function deliveryIdsOf(assignmentId: string): string[] {
  return Object.values(TOPICS).map((topic) => derivedRequestId('assignment-ended', assignmentId, topic))
}

/**
 * Ends everything granted under an assignment that is being released or replaced. The caller
 * holds the assignment's row lock, so no login can start under it meanwhile; logins are ended
 * before tokens, so a redemption that won the race has its token ended too.
 */
export async function endAssignment(trx: Trx, assignment: store.InstanceAssignmentRow): Promise<{ logins: number; tokens: number }> {
  const now = await store.databaseNow(trx)
  const logins = await store.endLoginsOfDevice(trx, assignment.device_id, now)
  const tokens = await store.endTokensOfDevice(trx, assignment.device_id, now)
  // Dates carry milliseconds, the database microseconds: rounded up, so nothing granted before the end is left out.
  const endedAt = new Date(now.getTime() + 1)
  const payload: EndedAssignment = { device_id: assignment.device_id, assignment_id: assignment.assignment_id, ended_at: endedAt.toISOString() }
  const ids = deliveryIdsOf(assignment.assignment_id)
  for (const [index, topic] of Object.values(TOPICS).entries()) await enqueue(trx, topic, { ...payload }, ids[index])
  return { logins, tokens }
}
