// PaymentManagement's order rules at an order's deadline, on PGlite (or PostgreSQL when
// DATABASE_URL is set): a payment counts when the platform completed it by the deadline, however
// late its report; expiry never takes an order whose platform says it was paid, or cannot say.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import * as orders from '../../services/payment-management/orders.ts'
import { paymentManagement } from '../../services/payment-management/server.ts'
import type { PaymentDatabase } from '../../services/payment-management/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

let db: Kysely<PaymentDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<PaymentDatabase>(paymentManagement))
})
after(async () => close?.())

const USD = (amountMinor: bigint) => ({ currencyCode: 'USD', amountMinor })

/** An order of 500 USD awaiting payment on alphapay under a fresh serial, with its deadline moved to `expiresAt`. */
async function awaiting(expiresAt: Date) {
  const orderId = randomUUID()
  const serialNumber = `TX${randomUUID().replaceAll('-', '').slice(0, 20).toUpperCase()}`
  await orders.submit(
    db,
    {
      orderId,
      deviceId: 'dev-deadline',
      appOrderId: randomUUID(),
      amountMinor: 500n,
      currencyCode: 'USD',
      description: 'gems',
      merchantId: 'shop',
      collectionAccounts: { alphapay: 'SHOP0001' },
    },
    60_000,
    new Date(),
  )
  await inTransaction(db, (trx) => orders.fetchNext(trx, 'dev-deadline', new Date()))
  await inTransaction(db, (trx) => orders.recordPrepay(trx, orderId, { platformId: 'alphapay', serialNumber, resultKeyId: 'rk', resultPublicKey: new Uint8Array([1]) }))
  await db.updateTable('orders').set({ expires_at: expiresAt }).where('order_id', '=', orderId).execute()
  return { orderId, serialNumber }
}

const queued = async (orderId: string) =>
  (await db.selectFrom('outbox').select(['topic', 'payload']).execute())
    .filter((row) => (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload).order_id === orderId)
    .map((row) => row.topic)
    .filter((topic) => topic !== 'push') // every submission pushes to the account's terminals; not what these tests are about
    .sort()

test(`a payment completed by the deadline counts even when the order expired before its report arrived; one completed after is refunded (${DATABASE_KIND})`, async () => {
  const deadline = new Date(Date.now() - 10_000)
  const inTime = await awaiting(deadline)
  await inTransaction(db, (trx) => orders.cancel(trx, inTime.orderId, 'not paid in time', 'expired'))
  const paid = await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', inTime.serialNumber, USD(500n), new Date(deadline.getTime())))
  assert.equal(paid.state, 'paid', 'completed exactly at the deadline: in time')
  assert.equal(paid.end_reason, '')
  assert.deepEqual(await queued(inTime.orderId), ['cancel-prepay', 'fulfil'])

  const late = await awaiting(deadline)
  await inTransaction(db, (trx) => orders.cancel(trx, late.orderId, 'not paid in time', 'expired'))
  const refunded = await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', late.serialNumber, USD(500n), new Date(deadline.getTime() + 1)))
  assert.equal(refunded.state, 'failed')
  assert.match(refunded.end_reason, /after the order's deadline/)
  assert.deepEqual(await queued(late.orderId), ['cancel-prepay', 'refund'])

  // Not yet expired here, but paid after the deadline all the same: refunded.
  const unswept = await awaiting(deadline)
  assert.equal((await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', unswept.serialNumber, USD(500n), new Date()))).state, 'failed')

  // A cancelled order's payment is refunded, in time or not; a wrong amount too.
  const cancelled = await awaiting(new Date(Date.now() + 60_000))
  await inTransaction(db, (trx) => orders.cancel(trx, cancelled.orderId, 'changed my mind'))
  assert.equal((await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', cancelled.serialNumber, USD(500n), new Date()))).state, 'failed')
  const short = await awaiting(new Date(Date.now() + 60_000))
  const wrong = await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', short.serialNumber, USD(499n), new Date()))
  assert.match(wrong.end_reason, /not the amount due/)
})

test(`expiry asks the platform first: an order paid there, or whose platform cannot be asked, stays awaiting and is looked at again later (${DATABASE_KIND})`, async () => {
  const past = new Date(Date.now() - 1_000)
  // Orders of the previous test are out of the way.
  await db.updateTable('orders').set({ expires_at: new Date(Date.now() + 3_600_000) }).where('state', 'in', ['submitted', 'fetched', 'awaiting_payment']).execute()
  const paidThere = await awaiting(past)
  const unreachable = await awaiting(past)
  const unpaid = await awaiting(past)
  const verdicts = new Map<string, orders.PrepayVerdict>([
    [paidThere.serialNumber, 'paid'],
    [unreachable.serialNumber, 'unknown'],
    [unpaid.serialNumber, 'unpaid'],
  ])
  const asked: string[] = []
  const ask = async (order: { serial_number: string | null }) => {
    asked.push(order.serial_number!)
    return verdicts.get(order.serial_number!)!
  }
  const first = await orders.expireDue(db, ask, { paidMs: 60_000, unknownMs: 60_000 }, new Date())
  assert.equal(first.expired, 1)
  assert.deepEqual(first.deferred.map((d) => [d.order.order_id, d.verdict]).sort(), [
    [paidThere.orderId, 'paid'],
    [unreachable.orderId, 'unknown'],
  ].sort())
  const state = async (orderId: string) => (await orders.get(db, orderId)).state
  assert.equal(await state(paidThere.orderId), 'awaiting_payment', 'paid at the platform: its report will land')
  assert.equal(await state(unreachable.orderId), 'awaiting_payment', 'the platform could not say: not yet')
  assert.equal(await state(unpaid.orderId), 'expired')
  assert.deepEqual(await queued(unpaid.orderId), ['cancel-prepay'])

  // The deferred ones are not asked about again before their recheck time...
  asked.length = 0
  assert.deepEqual(await orders.expireDue(db, ask, { paidMs: 60_000, unknownMs: 60_000 }, new Date()), { expired: 0, deferred: [] })
  assert.deepEqual(asked, [])
  // ...and then they are: the platform now says the unreachable one was never paid.
  await db.updateTable('orders').set({ expiry_recheck_at: past }).where('order_id', 'in', [paidThere.orderId, unreachable.orderId]).execute()
  verdicts.set(unreachable.serialNumber, 'unpaid')
  const later = await orders.expireDue(db, ask, { paidMs: 60_000, unknownMs: 60_000 }, new Date())
  assert.equal(later.expired, 1)
  assert.equal(await state(unreachable.orderId), 'expired')
  assert.equal(await state(paidThere.orderId), 'awaiting_payment')
  // Its report then lands, completed in time: paid.
  assert.equal((await inTransaction(db, (trx) => orders.applyPayment(trx, 'alphapay', paidThere.serialNumber, USD(500n), past))).state, 'paid')

  // An order never prepaid expires without asking anyone.
  const plain = await orders.submit(
    db,
    { orderId: randomUUID(), deviceId: 'dev-plain', appOrderId: randomUUID(), amountMinor: 1n, currencyCode: 'USD', description: '', merchantId: 'shop', collectionAccounts: {} },
    60_000,
    new Date(),
  )
  await db.updateTable('orders').set({ expires_at: past }).where('order_id', '=', plain.order_id).execute()
  asked.length = 0
  assert.equal((await orders.expireDue(db, ask, { paidMs: 1, unknownMs: 1 }, new Date())).expired, 1)
  assert.deepEqual(asked, [])
  assert.equal(await state(plain.order_id), 'expired')
})
