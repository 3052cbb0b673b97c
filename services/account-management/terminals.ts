// Business rules of the account's own terminals (DESIGN "The account's terminals"): a terminal
// enrols in one cloud account at a time by proving the account's password exactly as a login
// does (login.ts: the same hash, failure counting and locks, per account and per terminal); the
// person lists and removes the account's terminals; removing one ends its push stream and its
// pending claims, written to the outbox in the removal's transaction.
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { LoginSettings } from '../runtime/config.ts'
import { inTransaction } from '../runtime/database.ts'
import { FailedPreconditionError, NotFoundError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { derivedRequestId, forgetAnswers } from '../runtime/idempotency.ts'
import type { Identity } from '../runtime/identity.ts'
import { enqueue } from '../runtime/outbox.ts'
import * as logins from './login.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

type Db = Kysely<AccountDatabase>
type Trx = Transaction<AccountDatabase>

export const DISPLAY_NAME_LENGTH = { min: 1, max: 64 } as const

export interface EnrollmentCheck {
  readonly accountId: string
  readonly terminalId: string
  readonly subjects: readonly logins.ThrottleSubject[]
  readonly verified: boolean
  readonly checkedAt: Date
}

/**
 * Checks the account password a terminal presents to enrol, outside any transaction, as a login
 * does: refused while the account or the terminal is locked; a missing account costs a dummy hash.
 */
export async function checkCredential(db: Db, input: { accountId: string; terminalId: string; password: string }, now: Date): Promise<EnrollmentCheck> {
  const subjects: logins.ThrottleSubject[] = [
    ['account', input.accountId],
    ['terminal', input.terminalId],
  ]
  const checkedAt = now
  await logins.assertNotLocked(db, subjects, checkedAt)
  const verified = await logins.verifyAccountPassword(db, input.accountId, input.password)
  return { accountId: input.accountId, terminalId: input.terminalId, subjects, verified, checkedAt }
}

/** A wrong password: counted (in its own transaction, so the count stays) and refused. */
export async function refuse(db: Db, check: EnrollmentCheck, settings: LoginSettings): Promise<never> {
  await inTransaction(db, (trx) => logins.recordCredentialOutcome(trx, check.subjects, false, check.checkedAt, settings))
  throw new PermissionDeniedError('PASSWORD_WRONG', 'account_id or password is wrong')
}

/**
 * Enrols the terminal of a verified check: clears the failures, then records the enrolment unless
 * the terminal is enrolled already (in this account: that enrolment is the answer; elsewhere:
 * refused) or the account has its most terminals.
 */
export async function enroll(trx: Trx, check: EnrollmentCheck, displayName: string, settings: LoginSettings & { maxPerAccount: number }): Promise<store.AccountTerminalRow> {
  if (!check.verified) throw new Error('enroll() needs a verified credential')
  await logins.recordCredentialOutcome(trx, check.subjects, true, check.checkedAt, settings)
  if (!(await store.lockCloudAccount(trx, check.accountId))) throw new NotFoundError('ACCOUNT_NOT_FOUND', `cloud account ${quote(check.accountId)} does not exist`)
  const existing = await store.lockAccountTerminal(trx, check.terminalId)
  if (existing) {
    if (existing.account_id === check.accountId) return existing
    throw new FailedPreconditionError(
      'TERMINAL_ENROLLED_ELSEWHERE',
      `terminal ${check.terminalId} is enrolled in another cloud account; remove it there first`,
    )
  }
  const count = await store.countAccountTerminals(trx, check.accountId)
  if (count >= settings.maxPerAccount) {
    throw new FailedPreconditionError(
      'TERMINAL_LIMIT_REACHED',
      `cloud account ${quote(check.accountId)} has ${count} terminals enrolled, the most it may have; remove one first`,
      { max_terminals: String(settings.maxPerAccount) },
    )
  }
  const row = await store.insertAccountTerminal(trx, { terminalId: check.terminalId, accountId: check.accountId, enrollmentId: randomUUID(), displayName })
  // Enrolled concurrently (another account's lock was held, not this one's): decide again on the winner.
  if (!row) return enroll(trx, check, displayName, settings)
  return row
}

/** The caller's own enrolment; PERMISSION_DENIED when it has none. */
export async function ownEnrollment(db: Db, caller: Identity): Promise<store.AccountTerminalRow> {
  const own = await store.findAccountTerminal(db, caller.id)
  if (!own) throw new PermissionDeniedError('NOT_ENROLLED', `terminal ${caller.id} is not enrolled in a cloud account`)
  return own
}

export async function get(db: Db, terminalId: string): Promise<store.AccountTerminalRow> {
  const row = await store.findAccountTerminal(db, terminalId)
  if (!row) throw new NotFoundError('TERMINAL_NOT_ENROLLED', `terminal ${quote(terminalId)} is not enrolled in a cloud account`, { terminal_id: terminalId })
  return row
}

export const TOPICS = { endStream: 'terminal-stream-end', endClaims: 'terminal-claims-end', endOfflineCredentials: 'terminal-offline-credentials-end' } as const

/** What each removal hand-off carries: the terminal, the enrolment that ended, and when (the database's clock). */
export interface RemovedTerminal {
  readonly terminal_id: string
  readonly enrollment_id: string
  readonly removed_at: string
}

/** The outbox deliveries that end an enrolment elsewhere: derived from it, so a retry or replay names the same ones. */
export function deliveryIdsOf(enrollmentId: string): string[] {
  return Object.values(TOPICS).map((topic) => derivedRequestId('terminal-removed', enrollmentId, topic))
}

/**
 * Removes a terminal from its account: a terminal may remove only terminals of its own account
 * (itself included), an operator any. In this transaction the end of its stream (InstanceEvents),
 * of its pending claims (PaymentManagement) and of its offline credentials (PaymentPlatform: the
 * money they hold goes back to their payers) goes to the outbox.
 */
export async function remove(trx: Trx, caller: Identity, terminalId: string): Promise<store.AccountTerminalRow> {
  const target = await store.lockAccountTerminal(trx, terminalId)
  if (caller.role === 'terminal') {
    const own = await ownEnrollment(trx, caller)
    // Whether the terminal is enrolled in some other account is not this caller's business.
    if (!target || target.account_id !== own.account_id) {
      throw new NotFoundError('TERMINAL_NOT_ENROLLED', `terminal ${quote(terminalId)} is not enrolled in cloud account ${own.account_id}`, { terminal_id: terminalId })
    }
  } else if (!target) {
    throw new NotFoundError('TERMINAL_NOT_ENROLLED', `terminal ${quote(terminalId)} is not enrolled in a cloud account`, { terminal_id: terminalId })
  }
  await store.deleteAccountTerminal(trx, terminalId)
  // The enrolment is over: its EnrollTerminal answers are not replayed to the terminal (rental-boundary.ts).
  await forgetAnswers(trx, { role: 'terminal', id: terminalId }, AccountManagementServiceService.enrollTerminal.path)
  // Rounded up, as a release's end is: a claim made before the removal is never left out.
  const removedAt = new Date((await store.databaseNow(trx)).getTime() + 1)
  const payload: RemovedTerminal = { terminal_id: target.terminal_id, enrollment_id: target.enrollment_id, removed_at: removedAt.toISOString() }
  const ids = deliveryIdsOf(target.enrollment_id)
  for (const [index, topic] of Object.values(TOPICS).entries()) await enqueue(trx, topic, { ...payload }, ids[index])
  return target
}

/** The enrolled terminals of the account a device is assigned to now (none when it is free). */
export async function ofDevice(db: Db, deviceId: string, limit: number): Promise<{ accountId: string; terminals: store.AccountTerminalRow[] }> {
  return (await store.findTerminalsOfDevice(db, deviceId, limit)) ?? { accountId: '', terminals: [] }
}

/** A terminal's enrolment, seen now when `seen` (a cheap write, at most once a minute), and whether a device serves its account. */
export async function enrollmentOf(db: Db, terminalId: string, deviceId: string, seen: boolean): Promise<{ row: store.AccountTerminalRow; servesDevice: boolean }> {
  let row = await get(db, terminalId)
  if (seen) row = (await store.touchAccountTerminal(db, terminalId)) ?? row
  const servesDevice = deviceId !== '' && (await store.findInstanceAssignment(db, deviceId))?.account_id === row.account_id
  return { row, servesDevice }
}
