// AccountManagement's login rules (services/account-management/login.ts) on a real database, no
// gRPC: the login state machine, single-use tokens, expiry at its boundary, lockouts after wrong
// passwords, and what a release ends.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import * as accounts from '../../services/account-management/accounts.ts'
import * as grants from '../../services/account-management/grants.ts'
import * as logins from '../../services/account-management/login.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import * as store from '../../services/account-management/store/repository.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { type LoginSettings, loadConfig } from '../../services/runtime/config.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { hashPassword } from '../../services/runtime/passwords.ts'
import { DATABASE_KIND, queuedDeliveries, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<AccountDatabase>(accountManagement)
const SETTINGS: LoginSettings = { ...loadConfig({}).login, maxFailures: 3 }
const PASSWORD = 'correct horse battery'
let passwordHash: string | undefined

/** A registered account with a device assigned to it; names unique to the test. */
async function assignedDevice(): Promise<{ accountId: string; deviceId: string }> {
  const accountId = `acct-${randomUUID().slice(0, 8)}`
  const deviceId = `dev-${randomUUID().slice(0, 8)}`
  passwordHash ??= await hashPassword(PASSWORD)
  await accounts.registerCloudAccount(service.db, accountId, passwordHash)
  await inTransaction(service.db, (trx) => accounts.assignInstance(trx, deviceId, accountId))
  return { accountId, deviceId }
}

const start = (deviceId: string, settings = SETTINGS) => inTransaction(service.db, (trx) => logins.startLogin(trx, deviceId, settings, new Date()))

async function verify(login: store.LoginRow, password = PASSWORD, bindingCode = login.binding_code): Promise<store.LoginRow> {
  const check = await logins.checkCredentials(service.db, { deviceId: login.device_id, loginId: login.login_id, bindingCode, password }, new Date())
  assert.ok(!('answered' in check), 'no stored answer outside a call')
  return inTransaction(service.db, (trx) => logins.recordVerification(trx, check, SETTINGS, new Date()))
}

const redeem = (login: store.LoginRow, settings = SETTINGS) => inTransaction(service.db, (trx) => logins.redeemLogin(trx, login.device_id, login.login_id, settings, new Date()))
const consume = (token: string, deviceId: string) => inTransaction(service.db, (trx) => logins.consumeLoginToken(trx, token, deviceId, new Date()))

test(`a login goes pending -> verified -> redeemed, once each; its token is good once, on its own device only (${DATABASE_KIND})`, async () => {
  const { accountId, deviceId } = await assignedDevice()
  const login = await start(deviceId)
  assert.equal(login.state, 'pending')
  assert.equal(login.account_id, accountId, 'the account comes from the device, never from the terminal')
  assert.equal((await verify(login)).state, 'verified')
  await refusedWith(verify(login), 'LOGIN_VERIFIED')
  // Another device (assigned to the same account) cannot redeem it: not found, and it stays verified.
  const other = `dev-${randomUUID().slice(0, 8)}`
  await inTransaction(service.db, (trx) => accounts.assignInstance(trx, other, accountId))
  await refusedWith(inTransaction(service.db, (trx) => logins.redeemLogin(trx, other, login.login_id, SETTINGS, new Date())), 'LOGIN_NOT_FOUND')
  assert.equal((await store.findLogin(service.db, login.login_id))?.state, 'verified')
  const { token } = await redeem(login)
  await refusedWith(redeem(login), 'LOGIN_ALREADY_REDEEMED')

  await refusedWith(consume(token, 'dev-someone-else'), 'TOKEN_OTHER_DEVICE')
  const consumed = await consume(token, deviceId)
  assert.equal(consumed.accountId, accountId)
  assert.equal(consumed.appAccountId, undefined, 'no app account bound yet')
  await refusedWith(consume(token, deviceId), 'TOKEN_USED')
  await refusedWith(consume('not-a-token-we-issued', deviceId), 'TOKEN_INVALID')

  // Once the account is bound to an app account, a consumed token names it.
  await store.insertAppAccountBinding(service.db, accountId, `app-${accountId}`)
  const next = await start(deviceId)
  await verify(next)
  const consumedBound = await consume((await redeem(next)).token, deviceId)
  assert.equal(consumedBound.appAccountId, `app-${accountId}`)
})

test(`a wrong password or binding code rejects the login, which then cannot be verified (${DATABASE_KIND})`, async () => {
  const { deviceId } = await assignedDevice()
  const wrongPassword = await start(deviceId)
  assert.equal((await verify(wrongPassword, 'not the password')).state, 'rejected')
  await refusedWith(verify(wrongPassword), 'LOGIN_REJECTED')
  await refusedWith(redeem(wrongPassword), 'LOGIN_REJECTED')

  const wrongCode = await start(deviceId)
  const otherCode = wrongCode.binding_code === '000000' ? '000001' : '000000'
  assert.equal((await verify(wrongCode, PASSWORD, otherCode)).state, 'rejected', 'the right password with the wrong binding code is no login')
})

test(`a login of another device is not found, and an unassigned device cannot start one (${DATABASE_KIND})`, async () => {
  const { deviceId } = await assignedDevice()
  const login = await start(deviceId)
  await refusedWith(logins.getLogin(service.db, 'dev-other', login.login_id), 'LOGIN_NOT_FOUND')
  await refusedWith(logins.checkCredentials(service.db, { deviceId: 'dev-other', loginId: login.login_id, bindingCode: login.binding_code, password: PASSWORD }, new Date()), 'LOGIN_NOT_FOUND')
  await refusedWith(start('dev-never-assigned'), 'INSTANCE_NOT_ASSIGNED')
})

test(`expiry: a login is pending until just before expires_at and expired from it on (${DATABASE_KIND})`, async () => {
  const { deviceId } = await assignedDevice()
  const login = await start(deviceId)
  const at = login.expires_at.getTime()
  assert.equal(logins.effectiveState(login, new Date(at - 1)), 'pending')
  assert.equal(logins.effectiveState(login, new Date(at)), 'expired', 'expired at the boundary itself')
  assert.equal(logins.effectiveState({ ...login, state: 'verified' }, new Date(at)), 'expired', 'a verified login expires too')
  assert.equal(logins.effectiveState({ ...login, state: 'redeemed' }, new Date(at + 60_000)), 'redeemed', 'a redeemed login does not')

  // Logins and tokens that live no time at all are expired when used.
  const instant = { ...SETTINGS, loginTtlMs: 0, tokenTtlMs: 0 }
  await refusedWith(verify(await start(deviceId, instant)), 'LOGIN_EXPIRED')
  const verified = await start(deviceId)
  await verify(verified)
  const { token } = await redeem(verified, instant)
  await refusedWith(consume(token, deviceId), 'TOKEN_EXPIRED')
})

test(`lockout: maxFailures wrong passwords lock the account and the device until the lock ends, even for the right password (${DATABASE_KIND})`, async () => {
  const { accountId, deviceId } = await assignedDevice()
  for (let i = 0; i < SETTINGS.maxFailures; i++) assert.equal((await verify(await start(deviceId), 'wrong')).state, 'rejected')
  const locked = await refusedWith(verify(await start(deviceId)), 'LOGIN_LOCKED')
  assert.match(locked.message, /try again after/)

  const lockedUntil = (await store.findLoginFailures(service.db, 'account', accountId))?.locked_until
  assert.ok(lockedUntil, 'the account is locked')
  assert.equal((await store.findLoginFailures(service.db, 'device', deviceId))?.locked_until?.getTime(), lockedUntil.getTime(), 'and the device with it')
  const subjects: logins.ThrottleSubject[] = [['account', accountId]]
  await refusedWith(logins.assertNotLocked(service.db, subjects, new Date(lockedUntil.getTime() - 1)), 'LOGIN_LOCKED')
  await logins.assertNotLocked(service.db, subjects, lockedUntil) // unlocked at the boundary
})

test(`lockout: one success before the limit clears the count (${DATABASE_KIND})`, async () => {
  const { accountId, deviceId } = await assignedDevice()
  for (let i = 0; i < SETTINGS.maxFailures - 1; i++) await verify(await start(deviceId), 'wrong')
  assert.equal((await verify(await start(deviceId))).state, 'verified')
  assert.equal(await store.findLoginFailures(service.db, 'account', accountId), undefined, 'the failures are forgotten')
  for (let i = 0; i < SETTINGS.maxFailures - 1; i++) await verify(await start(deviceId), 'wrong')
  assert.equal((await verify(await start(deviceId))).state, 'verified', 'so the limit is counted afresh')
})

test(`lockout window: failures count within lockMs of the first one, and a failure after it starts a new count (${DATABASE_KIND})`, async () => {
  const t0 = new Date('2026-12-01T10:00:00.000Z')
  const fail = (subject: string, at: Date) => inTransaction(service.db, (trx) => logins.recordCredentialOutcome(trx, [['account', subject]], false, at, SETTINGS))
  const atOffset = (ms: number) => new Date(t0.getTime() + ms)

  // The third failure exactly lockMs after the first still counts: locked.
  const inside = `acct-${randomUUID().slice(0, 8)}`
  await fail(inside, t0)
  await fail(inside, t0)
  await fail(inside, atOffset(SETTINGS.lockMs))
  const lock = await store.findLoginFailures(service.db, 'account', inside)
  assert.equal(lock?.failures, 3)
  assert.equal(lock?.locked_until?.getTime(), atOffset(2 * SETTINGS.lockMs).getTime(), 'locked for lockMs from the failure that locked it')

  // One millisecond later, the old failures are forgotten: a count of one, no lock.
  const outside = `acct-${randomUUID().slice(0, 8)}`
  await fail(outside, t0)
  await fail(outside, t0)
  await fail(outside, atOffset(SETTINGS.lockMs + 1))
  const fresh = await store.findLoginFailures(service.db, 'account', outside)
  assert.equal(fresh?.failures, 1)
  assert.equal(fresh?.locked_until, null)
})

test(`a release ends the device's pending logins and unused tokens, and queues the hand-offs that end the rest (${DATABASE_KIND})`, async () => {
  const { accountId, deviceId } = await assignedDevice()
  const pending = await start(deviceId)
  const verified = await start(deviceId)
  await verify(verified)
  const { token } = await redeem(verified)

  const released = await inTransaction(service.db, (trx) => accounts.releaseInstance(trx, deviceId))
  assert.equal(released.account_id, accountId)
  // Ended, and no longer the device's to find (rental-boundary.ts).
  assert.equal((await store.findLogin(service.db, pending.login_id))?.state, 'ended')
  await refusedWith(verify(pending), 'LOGIN_NOT_FOUND')
  await refusedWith(consume(token, deviceId), 'TOKEN_ENDED')
  await refusedWith(
    inTransaction(service.db, (trx) => accounts.releaseInstance(trx, deviceId)),
    'INSTANCE_NOT_ASSIGNED',
  )

  // Sessions, channels and orders are other services': the outbox carries the end to each, once.
  const ids = grants.deliveryIdsOf(released.assignment_id)
  const queued = (await queuedDeliveries(service.db)).filter((row) => ids.includes(row.delivery_id))
  assert.deepEqual(queued.map((row) => row.topic).sort(), Object.values(grants.TOPICS).sort())
  for (const row of queued) assert.equal(row.payload.assignment_id, released.assignment_id)
})

test(`re-renting a device to another account ends the first renter's logins; the new renter's account logs in (${DATABASE_KIND})`, async () => {
  const first = await assignedDevice()
  const second = await assignedDevice()
  const pending = await start(first.deviceId)
  const { replaced } = await inTransaction(service.db, (trx) => accounts.assignInstance(trx, first.deviceId, second.accountId))
  assert.equal(replaced?.account_id, first.accountId)
  assert.equal((await store.findLogin(service.db, pending.login_id))?.state, 'ended')
  await refusedWith(verify(pending), 'LOGIN_NOT_FOUND')
  const next = await start(first.deviceId)
  assert.equal(next.account_id, second.accountId)
  assert.equal((await verify(next)).state, 'verified')
})

test(`app accounts: the first binding of a cloud account wins, and an app account belongs to one cloud account (${DATABASE_KIND})`, async () => {
  const { accountId, deviceId } = await assignedDevice()
  const other = await assignedDevice()
  const appAccountId = `app-${randomUUID().slice(0, 8)}`
  assert.equal((await logins.bindAppAccount(service.db, accountId, appAccountId)).app_account_id, appAccountId)
  assert.equal((await logins.bindAppAccount(service.db, accountId, 'app-later')).app_account_id, appAccountId, 'the first binding stays')
  await refusedWith(logins.bindAppAccount(service.db, other.accountId, appAccountId), 'APP_ACCOUNT_TAKEN')
  await refusedWith(logins.bindAppAccount(service.db, 'acct-nobody', 'app-x'), 'ACCOUNT_NOT_FOUND')

  const login = await start(deviceId)
  await verify(login)
  const { token } = await redeem(login)
  assert.equal((await consume(token, deviceId)).appAccountId, appAccountId, 'the next login returns the bound app account')
})
