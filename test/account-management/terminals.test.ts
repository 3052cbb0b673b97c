// AccountManagement's rules for the account's own terminals (terminals.ts) and its payment
// account bindings (payment-accounts.ts) on a real database, no gRPC: enrolment by the account
// password with the login's lockout, one account per terminal, the per-account limit, removal by
// the account's own terminals only; bindings with one default, resolved only for their account.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import * as accounts from '../../services/account-management/accounts.ts'
import * as payments from '../../services/account-management/payment-accounts.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import * as terminals from '../../services/account-management/terminals.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { loadConfig } from '../../services/runtime/config.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { hashPassword } from '../../services/runtime/passwords.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, queuedDeliveries, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<AccountDatabase>(accountManagement)
const SETTINGS = { ...loadConfig({}).login, maxFailures: 3, maxPerAccount: 2 }
const PASSWORD = 'correct horse battery'
const sealer = new Sealer(randomBytes(32))
const OPERATOR: Identity = { role: 'operator', id: 'ops' }
let passwordHash: string | undefined
const newId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`

async function account(): Promise<string> {
  const accountId = newId('acct')
  passwordHash ??= await hashPassword(PASSWORD)
  await accounts.registerCloudAccount(service.db, accountId, passwordHash)
  return accountId
}

/** Enrols a terminal as the handler does: the password checked outside a transaction, a wrong one counted and refused. */
async function enroll(accountId: string, terminalId: string, password = PASSWORD) {
  const check = await terminals.checkCredential(service.db, { accountId, terminalId, password }, new Date())
  if (!check.verified) return terminals.refuse(service.db, check, SETTINGS)
  return inTransaction(service.db, (trx) => terminals.enroll(trx, check, terminalId, SETTINGS))
}

const remove = (caller: Identity, terminalId: string) => inTransaction(service.db, (trx) => terminals.remove(trx, caller, terminalId))

test(`a terminal enrols once, in one account; enrolling again in the same account returns the same enrolment (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  const other = await account()
  const phone = newId('phone')
  const enrolled = await enroll(accountId, phone)
  assert.equal(enrolled.account_id, accountId)
  assert.equal((await enroll(accountId, phone)).enrollment_id, enrolled.enrollment_id, 'idempotent')
  await refusedWith(enroll(other, phone), 'TERMINAL_ENROLLED_ELSEWHERE')
  await refusedWith(enroll(newId('acct-none'), newId('phone')), 'PASSWORD_WRONG') // no such account: the same answer as a wrong password
})

test(`an account has at most maxPerAccount terminals (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  for (let i = 0; i < SETTINGS.maxPerAccount; i++) await enroll(accountId, newId('device'))
  const full = await refusedWith(enroll(accountId, newId('device')), 'TERMINAL_LIMIT_REACHED')
  assert.equal(full.metadata.max_terminals, String(SETTINGS.maxPerAccount))
})

test(`wrong passwords count per account and per terminal: the terminal is locked out of every account, the account for every terminal (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  const guesser = newId('guesser')
  for (let i = 0; i < SETTINGS.maxFailures; i++) await refusedWith(enroll(accountId, guesser, 'wrong'), 'PASSWORD_WRONG')
  await refusedWith(enroll(accountId, guesser), 'LOGIN_LOCKED')
  await refusedWith(enroll(accountId, newId('honest')), 'LOGIN_LOCKED') // the account is locked too
  await refusedWith(enroll(await account(), guesser), 'LOGIN_LOCKED') // and the terminal, whatever account it tries
})

test(`removal: a terminal removes terminals of its own account only, an operator any; it queues the end of the stream and the claims (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  const phone = newId('phone')
  const tablet = newId('tablet')
  const stranger = newId('stranger')
  await enroll(accountId, phone)
  const tabletRow = await enroll(accountId, tablet)
  await enroll(await account(), stranger)

  await refusedWith(remove({ role: 'terminal', id: stranger }, tablet), 'TERMINAL_NOT_ENROLLED') // another account's: not even told it exists
  await refusedWith(remove({ role: 'terminal', id: newId('unenrolled') }, tablet), 'NOT_ENROLLED')
  const removed = await remove({ role: 'terminal', id: phone }, tablet)
  assert.equal(removed.enrollment_id, tabletRow.enrollment_id)
  await refusedWith(terminals.get(service.db, tablet), 'TERMINAL_NOT_ENROLLED')
  await refusedWith(remove(OPERATOR, tablet), 'TERMINAL_NOT_ENROLLED')
  const ids = terminals.deliveryIdsOf(tabletRow.enrollment_id)
  const queued = (await queuedDeliveries(service.db)).filter((row) => ids.includes(row.delivery_id))
  assert.deepEqual(queued.map((row) => row.topic).sort(), Object.values(terminals.TOPICS).sort())

  assert.equal((await remove(OPERATOR, stranger)).terminal_id, stranger)
  assert.equal((await remove({ role: 'terminal', id: phone }, phone)).terminal_id, phone, 'a terminal may remove itself')
})

test(`terminals of a device: those of the account it serves now, none when it is free (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  const phone = newId('phone')
  await enroll(accountId, phone)
  const deviceId = newId('dev')
  assert.deepEqual(await terminals.ofDevice(service.db, deviceId, 10), { accountId: '', terminals: [] })
  await inTransaction(service.db, (trx) => accounts.assignInstance(trx, deviceId, accountId))
  const served = await terminals.ofDevice(service.db, deviceId, 10)
  assert.deepEqual([served.accountId, served.terminals.map((t) => t.terminal_id)], [accountId, [phone]])
  assert.equal((await terminals.enrollmentOf(service.db, phone, deviceId, false)).servesDevice, true)
  assert.equal((await terminals.enrollmentOf(service.db, phone, newId('dev'), false)).servesDevice, false)
})

test(`payment accounts: the first binding is the default, a payer is bound once per platform, and only the device's account resolves them (${DATABASE_KIND})`, async () => {
  const accountId = await account()
  const deviceId = newId('dev')
  const otherDevice = newId('dev')
  await inTransaction(service.db, (trx) => accounts.assignInstance(trx, deviceId, accountId))
  const otherAccount = await account()
  await inTransaction(service.db, (trx) => accounts.assignInstance(trx, otherDevice, otherAccount))
  await refusedWith(
    payments.bind(service.db, sealer, { deviceId: newId('dev-free'), platformId: 'alphapay', payerAccount: '6200000000000001', makeDefault: false }),
    'INSTANCE_NOT_ASSIGNED',
  )
  await refusedWith(payments.resolve(service.db, sealer, deviceId, ''), 'NO_DEFAULT_PAYMENT_ACCOUNT')

  const first = await payments.bind(service.db, sealer, { deviceId, platformId: 'alphapay', payerAccount: '6200000000000001', makeDefault: false })
  assert.equal(first.is_default, true, 'the first binding becomes the default')
  const stored = JSON.stringify(first, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))
  assert.ok(!stored.includes('6200000000000001'), 'the payer account is stored sealed and masked only')
  const second = await payments.bind(service.db, sealer, { deviceId, platformId: 'betapay', payerAccount: '6200000000000002', makeDefault: false })
  assert.equal(second.is_default, false)
  await refusedWith(payments.bind(service.db, sealer, { deviceId, platformId: 'alphapay', payerAccount: '6200000000000001', makeDefault: true }), 'PAYMENT_ACCOUNT_ALREADY_BOUND')

  assert.deepEqual(await payments.resolve(service.db, sealer, deviceId, '').then((r) => [r.row.binding_id, r.payerAccount]), [first.binding_id, '6200000000000001'])
  assert.deepEqual(await payments.resolve(service.db, sealer, deviceId, second.binding_id).then((r) => r.payerAccount), '6200000000000002')
  await refusedWith(payments.resolve(service.db, sealer, otherDevice, second.binding_id), 'BINDING_NOT_FOUND') // another account's binding
  await refusedWith(payments.setDefault(service.db, otherDevice, second.binding_id), 'BINDING_NOT_FOUND')

  await payments.setDefault(service.db, deviceId, second.binding_id)
  assert.equal((await payments.resolve(service.db, sealer, deviceId, '')).row.binding_id, second.binding_id, 'one default: the new one')
  await payments.unbind(service.db, deviceId, second.binding_id)
  await refusedWith(payments.resolve(service.db, sealer, deviceId, second.binding_id), 'BINDING_NOT_FOUND')
  await refusedWith(payments.resolve(service.db, sealer, deviceId, ''), 'NO_DEFAULT_PAYMENT_ACCOUNT')
})
