// Business rules of the login flow (DESIGN steps 1-4): the instance starts a login, the terminal
// verifies the credential for the device (the account is found from the device), the instance
// redeems the login for a single-use token, and the application validates it once.
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { LoginSettings } from '../runtime/config.ts'
import { isUniqueViolation } from '../runtime/database.ts'
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, quote, ResourceExhaustedError, UnauthenticatedError } from '../runtime/errors.ts'
import { verifyAgainstDummy, verifyPassword } from '../runtime/passwords.ts'
import type { StoredAnswer } from '../runtime/idempotency.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase, LoginStateColumn, ThrottleScope } from './store/tables.ts'

type Db = Kysely<AccountDatabase>

export type EffectiveLoginState = LoginStateColumn | 'expired'

/** A pending or verified login past its expiry is expired, whatever its row says. */
export function effectiveState(login: store.LoginRow, now: Date): EffectiveLoginState {
  if ((login.state === 'pending' || login.state === 'verified') && login.expires_at <= now) return 'expired'
  return login.state
}

export const hashToken = (token: string): string => createHash('sha256').update(token).digest('base64url')
const newSecret = (bytes: number): string => randomBytes(bytes).toString('base64url')

/** Starts a login under the device's assignment, held until the transaction ends: a release waits, then ends this login too. */
export async function startLogin(trx: Transaction<AccountDatabase>, deviceId: string, settings: LoginSettings, now: Date): Promise<store.LoginRow> {
  const login = await store.insertLoginUnderAssignment(trx, {
    loginId: newSecret(16), // 128 random bits
    deviceId,
    bindingCode: String(randomInt(0, 1_000_000)).padStart(6, '0'),
    expiresAt: new Date(now.getTime() + settings.loginTtlMs),
  })
  if (!login) throw new FailedPreconditionError('INSTANCE_NOT_ASSIGNED', `device ${deviceId} is not assigned to a cloud account; the operator assigns it first`)
  return login
}

/** The login of that device; another device's login is reported as missing, not as forbidden. */
/** The device's login, of its current rental only (rental-boundary.ts): an earlier renter's is not found, as one that never existed. */
export async function getLogin(db: Db, deviceId: string, loginId: string): Promise<store.LoginRow> {
  const login = await store.findLoginOfCurrentRental(db, deviceId, loginId)
  if (!login) throw loginNotFound(deviceId, loginId)
  return login
}

/** The login was started under the device's current assignment (the one read with it). */
const ofCurrentRental = (login: store.LoginRow, assignment: { assignment_id: string; account_id: string } | undefined): boolean =>
  assignment !== undefined && (login.assignment_id === null ? assignment.account_id === login.account_id : assignment.assignment_id === login.assignment_id)

const loginNotFound = (deviceId: string, loginId: string) => new NotFoundError('LOGIN_NOT_FOUND', `login_id: no login ${quote(loginId)} for device ${deviceId}`)

function assertState(login: store.LoginRow, expected: LoginStateColumn, action: string, now: Date): void {
  const state = effectiveState(login, now)
  if (state === expected) return
  if (state === 'expired') throw new FailedPreconditionError('LOGIN_EXPIRED', `login ${login.login_id} expired at ${login.expires_at.toISOString()}; start a new login`)
  if (state === 'redeemed') throw new FailedPreconditionError('LOGIN_ALREADY_REDEEMED', `login ${login.login_id} was already redeemed; start a new login`)
  if (state === 'ended') throw new FailedPreconditionError('LOGIN_ENDED', `login ${login.login_id} ended: device ${login.device_id} was released or re-rented; start a new login`)
  throw new FailedPreconditionError(`LOGIN_${state.toUpperCase()}`, `login ${login.login_id} is ${state}, so it cannot be ${action}`)
}

/** What failed credential checks are counted against: an account, and the device or terminal it was tried from. */
export type ThrottleSubject = readonly [scope: ThrottleScope, subject: string]

/** Refuses (RESOURCE_EXHAUSTED, LOGIN_LOCKED) while any of the subjects is locked. */
export async function assertNotLocked(db: Db, subjects: readonly ThrottleSubject[], now: Date): Promise<void> {
  for (const [scope, subject] of subjects) assertUnlocked(scope, (await store.findLoginFailures(db, scope, subject))?.locked_until ?? null, now)
}

function assertUnlocked(scope: ThrottleScope, lockedUntil: Date | null, now: Date): void {
  if (lockedUntil && lockedUntil > now) {
    throw new ResourceExhaustedError('LOGIN_LOCKED', `too many failed logins for this ${scope}; try again after ${lockedUntil.toISOString()}`, lockedUntil.getTime() - now.getTime())
  }
}

/**
 * Checks a cloud account's password, outside any transaction (the hash is slow and PGlite runs
 * one transaction at a time). Without an account (none given, or none by that id) a dummy hash
 * is verified, so answer and timing match a wrong password.
 */
export async function verifyAccountPassword(db: Db, accountId: string | undefined, password: string): Promise<boolean> {
  const account = accountId === undefined ? undefined : await store.findCloudAccount(db, accountId)
  return account ? verifyPassword(account.password_hash, password) : verifyAgainstDummy(password)
}

/** Records a credential check's outcome: a success clears each subject's failures, a failure counts against each (and may lock it). */
export async function recordCredentialOutcome(
  trx: Db,
  subjects: readonly ThrottleSubject[],
  verified: boolean,
  checkedAt: Date,
  settings: Pick<LoginSettings, 'lockMs' | 'maxFailures'>,
): Promise<void> {
  if (verified) return subjects.length > 0 ? store.clearLoginFailures(trx, subjects) : undefined
  for (const [scope, subject] of subjects) await store.recordLoginFailure(trx, scope, subject, checkedAt, settings.lockMs, settings.maxFailures)
}

const loginSubjects = (login: store.LoginRow): ThrottleSubject[] => [
  ['account', login.account_id],
  ['device', login.device_id],
]

export interface CredentialCheck {
  readonly login: store.LoginRow
  readonly verified: boolean
  readonly checkedAt: Date
  /** The login's subjects with a failure count kept when it was read: all a success has to clear. */
  readonly counted: readonly ThrottleSubject[]
}

/**
 * Checks the binding code and password the person typed, outside any transaction. The account is
 * the one the device is assigned to now, under the assignment the login was started in; if that
 * is gone, the password is checked against no account (a dummy hash).
 */
export async function checkCredentials<Answer>(
  db: Db,
  input: { deviceId: string; loginId: string; bindingCode: string; password: string },
  now: Date,
  /** The call's stored answer, read in the same statement (idempotentFlowReadingAnswer); none outside a call. */
  stored?: StoredAnswer<Answer>,
): Promise<CredentialCheck | { readonly answered: Answer }> {
  // One read (login, locks, assignment, hash, an answer already stored for this call), then the slow hash with no transaction open.
  const found = await store.findLoginToVerify(db, input.loginId, stored)
  const answered = stored?.answer(found?.storedAnswer)
  if (answered !== undefined) return { answered } // a retry of an answered call: nothing checked, nothing hashed again
  // An earlier rental's login is not found, as one that never existed (rental-boundary.ts).
  if (!found || found.login.device_id !== input.deviceId || !ofCurrentRental(found.login, found.assignment)) throw loginNotFound(input.deviceId, input.loginId)
  const { login } = found
  assertState(login, 'pending', 'verified', now)
  const checkedAt = now
  assertUnlocked('account', found.lockedUntil.account, checkedAt)
  assertUnlocked('device', found.lockedUntil.device, checkedAt)
  // Without the account's hash, a dummy hash: same answer, same time.
  const passwordOk = found.passwordHash !== undefined ? await verifyPassword(found.passwordHash, input.password) : await verifyAgainstDummy(input.password)
  const codeOk = constantTimeEqual(login.binding_code, input.bindingCode)
  const counted = loginSubjects(login).filter(([scope]) => found.counted[scope])
  return { login, verified: passwordOk && codeOk, checkedAt, counted }
}

/** Records the outcome in a transaction: the login ends VERIFIED or REJECTED; failures count per account and device. */
export async function recordVerification(trx: Db, check: CredentialCheck, settings: LoginSettings, now: Date): Promise<store.LoginRow> {
  const { login, verified, checkedAt } = check
  const moved = await store.transitionLogin(trx, login.login_id, 'pending', verified ? 'verified' : 'rejected', now)
  if (!moved) {
    // Someone else finished it (or it expired) while the password was checked.
    assertState((await store.findLogin(trx, login.login_id))!, 'pending', 'verified', now)
    throw new FailedPreconditionError('LOGIN_CHANGED', `login ${login.login_id} changed while it was being verified`)
  }
  // A success clears the counts the read found (none kept: nothing to write); a failure counts for both.
  await recordCredentialOutcome(trx, verified ? check.counted : loginSubjects(login), verified, checkedAt, settings)
  return moved
}

function constantTimeEqual(expected: string, given: string): boolean {
  const a = createHash('sha256').update(expected).digest()
  const b = createHash('sha256').update(given).digest()
  return timingSafeEqual(a, b)
}

/** Exchanges a verified login for a single-use token, exactly once even under concurrent calls. Call in a transaction. */
export async function redeemLogin(db: Db, deviceId: string, loginId: string, settings: LoginSettings, now: Date): Promise<{ token: string; expiresAt: Date }> {
  const token = newSecret(32)
  const expiresAt = new Date(now.getTime() + settings.tokenTtlMs)
  // The device's own login of its current rental, verified and unexpired: all in the one statement.
  const stored = await store.redeemLoginForToken(db, deviceId, loginId, { tokenHash: hashToken(token), expiresAt }, now)
  if (!stored) {
    // Why not, read only on this refusal: not its login (NOT_FOUND, as one that never existed), or its state.
    assertState(await getLogin(db, deviceId, loginId), 'verified', 'redeemed', now)
    throw new FailedPreconditionError('LOGIN_CHANGED', `login ${loginId} changed while it was being redeemed`)
  }
  return { token, expiresAt }
}

/** Consumes a token presented from a device; any failure is UNAUTHENTICATED with its reason. */
export async function consumeLoginToken(db: Db, token: string, deviceId: string, now: Date): Promise<{ accountId: string; appAccountId: string | undefined; assignmentId: string }> {
  const tokenHash = hashToken(token)
  const consumed = await store.consumeLoginToken(db, tokenHash, deviceId, now)
  if (!consumed) {
    const row = await store.findLoginToken(db, tokenHash)
    if (!row) throw new UnauthenticatedError('TOKEN_INVALID', 'login_token is not a token this service issued')
    if (row.device_id !== deviceId) throw new UnauthenticatedError('TOKEN_OTHER_DEVICE', `login_token was issued to another device, not ${deviceId}`)
    if (row.ended_at) throw new UnauthenticatedError('TOKEN_ENDED', `login_token ended unused: device ${deviceId} was released or re-rented after it was issued; log in again`)
    if (row.consumed_at) throw new UnauthenticatedError('TOKEN_USED', 'login_token was already used; log in again')
    throw new UnauthenticatedError('TOKEN_EXPIRED', `login_token expired at ${row.expires_at.toISOString()}; log in again`)
  }
  return { accountId: consumed.account_id, appAccountId: consumed.app_account_id ?? undefined, assignmentId: consumed.assignment_id ?? '' }
}

/** The first binding of an account wins; an app account can belong to one cloud account only. */
export async function bindAppAccount(db: Db, accountId: string, appAccountId: string): Promise<store.AppAccountBindingRow> {
  if (!(await store.findCloudAccount(db, accountId))) throw new NotFoundError('ACCOUNT_NOT_FOUND', `cloud account ${quote(accountId)} does not exist`)
  try {
    const binding = await store.insertAppAccountBinding(db, accountId, appAccountId)
    if (!binding) throw new Error('binding vanished')
    return binding
  } catch (error) {
    if (isUniqueViolation(error)) throw new AlreadyExistsError('APP_ACCOUNT_TAKEN', `app account ${appAccountId} is bound to another cloud account`)
    throw error
  }
}
