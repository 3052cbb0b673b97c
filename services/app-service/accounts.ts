// Business rules of app accounts and sessions: a cloud account's first login creates its app
// account ("cloud platform guest" + digits, fresh archive); later logins get the same one back.
import { createHash, randomBytes, randomInt } from 'node:crypto'
import type { Kysely } from 'kysely'
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

export async function openSession(db: Db, appAccountId: string, deviceId: string, ttlMs: number): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url')
  const expiresAt = new Date(Date.now() + ttlMs)
  await store.insertSession(db, { tokenHash: hashToken(token), appAccountId, deviceId, expiresAt })
  return { token, expiresAt }
}

/** The session's app account; the session must be live and belong to the calling device. */
export async function accountOfSession(db: Db, token: string, deviceId: string): Promise<store.AppAccountRow> {
  const session = await store.findSession(db, hashToken(token))
  if (!session || session.device_id !== deviceId) throw new UnauthenticatedError('SESSION_INVALID', 'session_token is not a session of this device; log in again')
  if (session.expires_at <= new Date()) throw new UnauthenticatedError('SESSION_EXPIRED', 'session_token expired; log in again')
  return getAppAccount(db, session.app_account_id)
}
