// Business rules of app accounts and sessions: a cloud account's first login creates its app
// account ("cloud platform guest" + digits, fresh archive); later logins get the same one back.
// A session belongs to the assignment (rental of the device) its login token was granted under
// and ends with it; once an assignment has ended, nothing is opened for it again.
import { createHash, randomBytes, randomInt } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { UnauthenticatedError } from '../runtime/errors.ts'
import * as store from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

type Db = Kysely<AppDatabase>

export const FRESH_ARCHIVE = { level: 1, coins: 0 } as const
const hashToken = (token: string): string => createHash('sha256').update(token).digest('base64url')

export function createGuestAccount(db: Db): Promise<store.AppAccountRow> {
  return store.insertAppAccount(db, {
    appAccountId: `app-${randomBytes(8).toString('hex')}`,
    displayName: `cloud platform guest ${String(randomInt(0, 1_000_000)).padStart(6, '0')}`,
    archive: { ...FRESH_ARCHIVE },
  })
}

export async function getAppAccount(db: Db, appAccountId: string): Promise<store.AppAccountRow> {
  const account = await store.findAppAccount(db, appAccountId)
  if (!account) throw new Error(`app account ${appAccountId} is bound but missing`)
  return account
}

/** Removes an account this login created but lost the binding race for (never used by anyone). */
export function discardAppAccount(db: Db, appAccountId: string): Promise<void> {
  return store.deleteAppAccount(db, appAccountId)
}

/**
 * Opens a session of the assignment the login token was granted under. The assignment's row is
 * held until the transaction ends, so an EndDeviceSessions for it either sees this session or
 * makes this call fail; never a session that outlives its assignment.
 */
export async function openSession(
  trx: Transaction<AppDatabase>,
  appAccountId: string,
  deviceId: string,
  assignmentId: string,
  ttlMs: number,
  now: Date,
): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url')
  const expiresAt = new Date(now.getTime() + ttlMs)
  const opened = await store.insertSessionUnderAssignment(trx, { tokenHash: hashToken(token), appAccountId, deviceId, assignmentId, expiresAt })
  if (!opened) throw new UnauthenticatedError('ASSIGNMENT_ENDED', `device ${deviceId} was released or re-rented after this login token was issued; log in again`)
  return { token, expiresAt }
}

const SESSION_ENDED = 'session_token ended: the device was released or re-rented; log in again'

/** The refusal of a session whose assignment ended (the device was released or re-rented). */
export const sessionEnded = (): UnauthenticatedError => new UnauthenticatedError('SESSION_ENDED', SESSION_ENDED)

/** The live session of the calling device, with its app account. */
export async function sessionOf(db: Db, token: string, deviceId: string, now: Date): Promise<{ session: store.AppSessionRow; account: store.AppAccountRow }> {
  const found = await store.findSessionWithAccount(db, hashToken(token))
  const session = found?.session
  if (!session || session.device_id !== deviceId) throw new UnauthenticatedError('SESSION_INVALID', 'session_token is not a session of this device; log in again')
  if (session.ended_at) throw sessionEnded()
  if (session.expires_at <= now) throw new UnauthenticatedError('SESSION_EXPIRED', 'session_token expired; log in again')
  return { session, account: found.account ?? (await getAppAccount(db, session.app_account_id)) }
}

/** The session's app account; the session must be live and belong to the calling device. */
export async function accountOfSession(db: Db, token: string, deviceId: string, now: Date): Promise<store.AppAccountRow> {
  return (await sessionOf(db, token, deviceId, now)).account
}

/** Sessions recorded before assignments were (no assignment id) end with whichever assignment of their device ends first. */
export const endedWith = (assignmentId: string): string[] => [assignmentId, '']

/**
 * Ends a device's assignment here: records it as ended at `endedAt` (when AccountManagement
 * ended it: where the next rental began; first, so a session being opened for it waits or fails)
 * and ends its live sessions. Returns how many sessions it ended.
 */
export async function endAssignment(trx: Transaction<AppDatabase>, deviceId: string, assignmentId: string, endedAt: Date, now: Date): Promise<number> {
  await store.endDeviceAssignment(trx, deviceId, assignmentId, endedAt)
  return store.endSessions(trx, deviceId, endedWith(assignmentId), now)
}
