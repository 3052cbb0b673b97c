// The account_management store on PGlite, or on PostgreSQL when DATABASE_URL is set.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import {
  BindPaymentAccountRequest,
  BindPaymentAccountResponse,
  RegisterCloudAccountRequest,
  RegisterCloudAccountResponse,
} from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import * as store from '../../services/account-management/store/repository.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { callOf, idempotent } from '../../services/runtime/idempotency.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

const fingerprints = new Sealer(randomBytes(32))
let db: Kysely<AccountDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<AccountDatabase>(accountManagement))
})
after(async () => close?.())

test(`cloud accounts: insert once, find, list in id order after a cursor (${DATABASE_KIND})`, async () => {
  assert.ok(await store.insertCloudAccount(db, 'bob', '$argon2id$fake'))
  assert.equal(await store.insertCloudAccount(db, 'bob', '$argon2id$other'), undefined, 'a taken id is refused')
  assert.equal((await store.findCloudAccount(db, 'bob'))?.password_hash, '$argon2id$fake', 'the first row is intact')
  for (const id of ['amy', 'cat']) await store.insertCloudAccount(db, id, 'h')
  assert.deepEqual(
    (await store.listCloudAccounts(db, undefined, 10)).map((r) => r.account_id),
    ['amy', 'bob', 'cat'],
  )
  assert.deepEqual(
    (await store.listCloudAccounts(db, 'amy', 1)).map((r) => r.account_id),
    ['bob'],
  )
})

test(`instance assignments: insert once, replace with a new assignment id, delete ends it, unknown accounts are refused (${DATABASE_KIND})`, async () => {
  await store.insertCloudAccount(db, 'dan', 'h')
  await store.insertCloudAccount(db, 'eve', 'h')
  assert.equal((await store.insertInstanceAssignment(db, 'dev-1', 'dan', 'a-1'))?.account_id, 'dan')
  assert.equal(await store.insertInstanceAssignment(db, 'dev-1', 'eve', 'a-2'), undefined, 'an assigned device is replaced, not inserted')
  assert.equal(await store.replaceInstanceAssignment(db, 'dev-9', 'eve', 'a-9'), undefined, 'a free device has nothing to replace')
  const moved = await store.replaceInstanceAssignment(db, 'dev-1', 'eve', 'a-2')
  assert.deepEqual([moved?.account_id, moved?.assignment_id], ['eve', 'a-2'])
  assert.equal((await store.findInstanceAssignment(db, 'dev-1'))?.assignment_id, 'a-2')
  await assert.rejects(store.insertInstanceAssignment(db, 'dev-2', 'nobody', 'a-3'), /foreign key/)
  await assert.rejects(store.insertInstanceAssignment(db, 'dev-3', 'dan', 'a-2'), /unique|duplicate/, 'assignment ids are never reused')
  assert.equal((await store.deleteInstanceAssignment(db, 'dev-1'))?.assignment_id, 'a-2')
  assert.equal(await store.findInstanceAssignment(db, 'dev-1'), undefined)
})

test(`idempotency: concurrent calls with one request id have one effect and one answer (${DATABASE_KIND})`, async () => {
  const caller = { role: 'operator', id: 'op' } as const
  const request = { requestId: '3f0e3c1e-8f57-4bd2-9b1c-0c5d1f6f2a11', accountId: 'fay', password: '' }
  let effects = 0
  const attempt = () =>
    idempotent(
      db,
      callOf({ caller, method: 'test/Register', fingerprints }, request, RegisterCloudAccountRequest, RegisterCloudAccountResponse),
      async (trx) => {
        effects += 1
        const row = await store.insertCloudAccount(trx, 'fay', 'h')
        if (!row) throw new Error('duplicate effect')
        return { cloudAccount: { accountId: row.account_id, createTime: row.created_at } }
      },
    )
  const answers = await Promise.all([attempt(), attempt(), attempt()])
  assert.equal(new Set(answers.map((a) => a.cloudAccount?.createTime?.toISOString())).size, 1, 'every caller got the first answer')
  const rows = await db.selectFrom('cloud_accounts').select('account_id').where('account_id', '=', 'fay').execute()
  assert.equal(rows.length, 1)
  assert.equal(effects, 1, 'the work ran once')
  const stored = await db.selectFrom('idempotency_keys').selectAll().where('caller', '=', 'operator/op').execute()
  assert.equal(stored.length, 1)
})

test(`idempotency rows hold neither the request id nor the response in clear (${DATABASE_KIND})`, async () => {
  const rows = await db.selectFrom('idempotency_keys').selectAll().execute()
  assert.ok(rows.length > 0)
  for (const row of rows) {
    assert.doesNotMatch(row.request_id, /-/, 'a hash, not the UUID')
    assert.ok(!Buffer.from(row.response).includes(Buffer.from('fay')), 'the response is sealed')
  }
})

test(`idempotency fingerprints are keyed and blind to secrets: a dump cannot confirm an account number (${DATABASE_KIND})`, async () => {
  const caller = { role: 'terminal', id: 'phone' } as const
  const request = { requestId: '0b7c1a52-5f0e-4a57-9d7e-31f1e2a0c9d4', deviceId: 'dev-9', platformId: 'alphapay', payerAccount: 'ACCT12345678', makeDefault: false }
  const call = callOf({ caller, method: 'test/Bind', fingerprints }, request, BindPaymentAccountRequest, BindPaymentAccountResponse)
  assert.equal(call.request.payerAccount, '', 'secrets are blanked by callOf itself')
  assert.equal(request.payerAccount, 'ACCT12345678', 'the handler keeps its request')
  await idempotent(db, call, async () => ({ binding: undefined }))
  const row = await db.selectFrom('idempotency_keys').select('request_hash').where('caller', '=', 'terminal/phone').executeTakeFirstOrThrow()
  // What an attacker with the dump computes for each guess: an unkeyed hash of the request.
  for (const guess of [request, { ...request, payerAccount: '' }]) {
    const unkeyed = createHash('sha256').update(BindPaymentAccountRequest.encode(guess).finish()).digest('base64url')
    assert.notEqual(row.request_hash, unkeyed)
  }
  assert.doesNotMatch(row.request_hash, /ACCT/)
})
