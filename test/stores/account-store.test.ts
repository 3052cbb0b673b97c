// The account_management store on PGlite, or on PostgreSQL when DATABASE_URL is set.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import { RegisterCloudAccountRequest, RegisterCloudAccountResponse } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import * as store from '../../services/account-management/store/repository.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { idempotent } from '../../services/runtime/idempotency.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

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
      { caller, method: 'test/Register', requestId: request.requestId, request, requestCodec: RegisterCloudAccountRequest, responseCodec: RegisterCloudAccountResponse },
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
