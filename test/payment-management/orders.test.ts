// PaymentManagement's order rules (services/payment-management/orders.ts) on a real database, no
// gRPC: the order state machine (moves allowed and refused, with the reason), the earliest order
// first, payments counted only for the amount due by the deadline (checked at the boundary),
// idempotent reports and hand-offs, the first claim winning, and expiry that never races a payment.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { Transaction } from 'kysely'
import * as orders from '../../services/payment-management/orders.ts'
import { paymentManagement } from '../../services/payment-management/server.ts'
import * as store from '../../services/payment-management/store/repository.ts'
import type { OrderRow } from '../../services/payment-management/store/repository.ts'
import type { PaymentDatabase } from '../../services/payment-management/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { DATABASE_KIND, queuedDeliveries, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<PaymentDatabase>(paymentManagement)
const TTL_MS = 15 * 60_000
const PRICE = { currencyCode: 'USD', amountMinor: 1799n }

const tx = <T>(work: (trx: Transaction<PaymentDatabase>) => Promise<T>) => inTransaction(service.db, work)

async function submitted(deviceId = `dev-${randomUUID().slice(0, 8)}`, ttlMs = TTL_MS): Promise<OrderRow> {
  return tx((trx) =>
    orders.submit(
      trx,
      {
        orderId: randomUUID(),
        deviceId,
        appOrderId: `app-order-${randomUUID()}`,
        amountMinor: PRICE.amountMinor,
        currencyCode: PRICE.currencyCode,
        description: '2 x Gem pack',
        merchantId: 'shop',
        collectionAccounts: { alphapay: 'SHOP-ALPHA' },
      },
      ttlMs,
      new Date(),
    ),
  )
}

/** Submitted, fetched and prepaid at alphapay: awaiting payment. */
async function awaitingPayment(): Promise<OrderRow> {
  const order = await submitted()
  await tx((trx) => orders.fetchNext(trx, order.device_id, new Date()))
  return tx((trx) =>
    orders.recordPrepay(trx, order.order_id, { platformId: 'alphapay', serialNumber: `TX${randomUUID()}`, resultKeyId: 'key-1', resultPublicKey: new Uint8Array([1]) }),
  )
}

/** An order awaiting payment whose deadline has passed (no prepay can be made past it, so its deadline is moved back). */
async function awaitingPastDeadline(): Promise<OrderRow> {
  const order = await awaitingPayment()
  return (await store.updateOrder(service.db, order.order_id, ['awaiting_payment'], { expires_at: new Date(Date.now() - 1) }))!
}

const pay = (order: OrderRow, completedAt: Date, paid = PRICE) => tx((trx) => orders.applyPayment(trx, order.platform_id!, order.serial_number!, paid, completedAt))
const inTime = (order: OrderRow) => new Date(order.expires_at.getTime() - 1_000)
const deliveriesOf = async (orderId: string, topic: string) => (await queuedDeliveries(service.db, topic)).filter((row) => row.payload.order_id === orderId)

test(`the happy path: submitted -> fetched -> awaiting_payment -> paid -> effective, with the hand-offs queued once (${DATABASE_KIND})`, async () => {
  const order = await submitted()
  assert.equal(order.state, 'submitted')
  assert.equal((await deliveriesOf(order.order_id, orders.TOPICS.push)).length, 1, 'pushed to the account terminals')
  const fetched = await tx((trx) => orders.fetchNext(trx, order.device_id, new Date()))
  assert.deepEqual([fetched.order_id, fetched.state], [order.order_id, 'fetched'])
  assert.equal(orders.assertPrepayable(fetched, 'alphapay', new Date()), 'SHOP-ALPHA')
  const awaiting = await tx((trx) =>
    orders.recordPrepay(trx, order.order_id, { platformId: 'alphapay', serialNumber: `TX${randomUUID()}`, resultKeyId: 'k', resultPublicKey: new Uint8Array([1]) }),
  )
  assert.equal(awaiting.state, 'awaiting_payment')

  assert.equal((await pay(awaiting, inTime(awaiting))).state, 'paid')
  assert.equal((await pay(awaiting, inTime(awaiting))).state, 'paid', 'a duplicate report changes nothing')
  const fulfil = await deliveriesOf(order.order_id, orders.TOPICS.fulfil)
  assert.equal(fulfil.length, 1, 'one hand-off to the application, however many reports')
  assert.deepEqual(orders.paidOrderOf(fulfil[0]!.payload)?.amount_minor, PRICE.amountMinor)

  assert.equal((await tx((trx) => orders.markEffective(trx, order.order_id)))?.state, 'effective')
  assert.equal(await tx((trx) => orders.markEffective(trx, order.order_id)), undefined, 'effective once')
  assert.equal((await pay(awaiting, inTime(awaiting))).state, 'effective', 'a late duplicate report leaves it effective')
  assert.ok(orders.isFinal('effective'))
})

test(`refused moves: each names the state it is in (${DATABASE_KIND})`, async () => {
  const order = await submitted()
  await refusedWith(
    tx((trx) => orders.recordPrepay(trx, order.order_id, { platformId: 'alphapay', serialNumber: 'TX-SKIP', resultKeyId: 'k', resultPublicKey: new Uint8Array([1]) })),
    'ILLEGAL_TRANSITION',
  )
  await refusedWith(
    tx((trx) => orders.transition(trx, order.order_id, 'paid')),
    'ILLEGAL_TRANSITION',
  )
  await refusedWith(
    tx((trx) => orders.transition(trx, randomUUID(), 'fetched')),
    'ORDER_NOT_FOUND',
  )
  assert.throws(
    () => orders.assertPrepayable(order, 'alphapay', new Date()),
    (error: { reason: string }) => error.reason === 'ILLEGAL_TRANSITION',
  )

  const paid = await awaitingPayment()
  await pay(paid, inTime(paid))
  for (const to of ['cancelled', 'expired', 'fetched', 'awaiting_payment', 'refunded'] as const) {
    const refused = await refusedWith(
      tx((trx) => orders.transition(trx, paid.order_id, to)),
      'ILLEGAL_TRANSITION',
    )
    assert.equal(refused.metadata.state, 'paid')
  }
  await refusedWith(
    tx((trx) => orders.cancel(trx, paid.order_id, 'too late')),
    'ILLEGAL_TRANSITION',
  )
  await tx((trx) => orders.markEffective(trx, paid.order_id))
  for (const to of Object.keys(orders.TRANSITIONS) as orders.OrderState[]) {
    await refusedWith(
      tx((trx) => orders.transition(trx, paid.order_id, to)),
      'ILLEGAL_TRANSITION',
    )
  }
})

test(`prepay checks: only a platform the merchant accepts, only before the deadline (${DATABASE_KIND})`, async () => {
  const order = await submitted()
  const fetched = await tx((trx) => orders.fetchNext(trx, order.device_id, new Date()))
  assert.throws(
    () => orders.assertPrepayable(fetched, 'betapay', new Date()),
    (error: { reason: string }) => error.reason === 'PLATFORM_NOT_ACCEPTED',
  )
  assert.throws(
    () => orders.assertPrepayable({ ...fetched, expires_at: new Date(Date.now() - 1) }, 'alphapay', new Date()),
    (error: { reason: string }) => error.reason === 'ORDER_EXPIRED',
  )
})

test(`a device's orders are fetched earliest first, each once; an app order is submitted once (${DATABASE_KIND})`, async () => {
  const deviceId = `dev-${randomUUID().slice(0, 8)}`
  const first = await submitted(deviceId)
  const second = await submitted(deviceId)
  assert.equal((await tx((trx) => orders.fetchNext(trx, deviceId, new Date()))).order_id, first.order_id)
  assert.equal((await tx((trx) => orders.fetchNext(trx, deviceId, new Date()))).order_id, second.order_id)
  await refusedWith(
    tx((trx) => orders.fetchNext(trx, deviceId, new Date())),
    'NO_ORDER_WAITING',
  )

  const again = tx((trx) =>
    orders.submit(
      trx,
      { orderId: randomUUID(), deviceId, appOrderId: first.app_order_id, amountMinor: 1n, currencyCode: 'USD', description: 'x', merchantId: 'shop', collectionAccounts: {} },
      TTL_MS,
      new Date(),
    ),
  )
  await refusedWith(again, 'ORDER_ALREADY_SUBMITTED')
})

test(`a payment counts when it completed by the deadline, at the boundary itself, and is refunded one millisecond later (${DATABASE_KIND})`, async () => {
  const atDeadline = await awaitingPayment()
  assert.equal((await pay(atDeadline, atDeadline.expires_at)).state, 'paid')

  const late = await awaitingPayment()
  const failed = await pay(late, new Date(late.expires_at.getTime() + 1))
  assert.equal(failed.state, 'failed')
  assert.match(failed.end_reason, /after the order's deadline/)
  assert.equal((await deliveriesOf(late.order_id, orders.TOPICS.refund)).length, 1, 'the money goes back')
  assert.equal((await deliveriesOf(late.order_id, orders.TOPICS.fulfil)).length, 0, 'and nothing is delivered')
  await tx((trx) => orders.markRefunded(trx, late.order_id))
  assert.equal((await orders.get(service.db, late.order_id)).state, 'refunded', 'once the platform refunded it')
})

test(`a payment of another amount or currency, or of a cancelled order, is refunded, never delivered (${DATABASE_KIND})`, async () => {
  const short = await awaitingPayment()
  assert.equal((await pay(short, inTime(short), { currencyCode: 'USD', amountMinor: PRICE.amountMinor - 1n })).state, 'failed')
  const otherCurrency = await awaitingPayment()
  assert.equal((await pay(otherCurrency, inTime(otherCurrency), { currencyCode: 'EUR', amountMinor: PRICE.amountMinor })).state, 'failed')

  const cancelled = await awaitingPayment()
  assert.equal((await tx((trx) => orders.cancel(trx, cancelled.order_id, 'the person cancelled'))).state, 'cancelled')
  assert.equal((await deliveriesOf(cancelled.order_id, orders.TOPICS.cancelPrepay)).length, 1, 'its prepay is cancelled at the platform')
  const paidAfterCancel = await pay(cancelled, inTime(cancelled))
  assert.deepEqual([paidAfterCancel.state, paidAfterCancel.end_reason], ['failed', 'paid after the order was cancelled'])
  for (const order of [short, otherCurrency, cancelled]) {
    assert.equal((await deliveriesOf(order.order_id, orders.TOPICS.refund)).length, 1)
    assert.equal((await deliveriesOf(order.order_id, orders.TOPICS.fulfil)).length, 0)
  }
  await refusedWith(
    tx((trx) => orders.applyPayment(trx, 'alphapay', 'TX-NEVER-PREPAID', PRICE, new Date())),
    'ORDER_NOT_FOUND',
  )
})

test(`an order expired meanwhile still counts a payment completed in time (its report was late) (${DATABASE_KIND})`, async () => {
  const order = await awaitingPayment()
  await tx((trx) => orders.cancel(trx, order.order_id, 'not paid in time', 'expired'))
  assert.equal((await orders.get(service.db, order.order_id)).state, 'expired')
  assert.equal((await pay(order, order.expires_at)).state, 'paid')
  assert.equal((await deliveriesOf(order.order_id, orders.TOPICS.fulfil)).length, 1)
})

test(`claims: the first terminal wins, claiming again returns its order, others are refused (${DATABASE_KIND})`, async () => {
  const order = await submitted()
  const claimed = await tx((trx) => orders.claim(trx, order.order_id, 'phone', 'tap', new Date()))
  assert.deepEqual([claimed.state, claimed.claimed_by, claimed.claim_gesture], ['fetched', 'phone', 'tap'])
  assert.equal((await tx((trx) => orders.claim(trx, order.order_id, 'phone', 'slide', new Date()))).claim_gesture, 'tap', 'the same terminal again: its order, unchanged')
  await refusedWith(
    tx((trx) => orders.claim(trx, order.order_id, 'tablet', 'tap', new Date())),
    'ORDER_ALREADY_CLAIMED',
  )
  assert.equal((await deliveriesOf(order.order_id, orders.TOPICS.claimed)).length, 1, 'the other terminals are told once')
  assert.equal(orders.isWaiting(claimed), false)

  const fetched = await submitted()
  await tx((trx) => orders.fetchNext(trx, fetched.device_id, new Date()))
  await refusedWith(
    tx((trx) => orders.claim(trx, fetched.order_id, 'phone', 'tap', new Date())),
    'ORDER_NOT_CLAIMABLE',
  )
  const expired = await submitted(undefined, 0)
  await refusedWith(
    tx((trx) => orders.claim(trx, expired.order_id, 'phone', 'tap', new Date())),
    'ORDER_EXPIRED',
  )
})

test(`a removed terminal's unpaid claims made before the removal end; a release cancels only orders submitted before it (${DATABASE_KIND})`, async () => {
  const claimedOrder = await submitted()
  await tx((trx) => orders.claim(trx, claimedOrder.order_id, 'removed-phone', 'tap', new Date()))
  const ended = await tx((trx) => orders.endTerminalClaims(trx, 'removed-phone', new Date(Date.now() + 1_000)))
  assert.deepEqual(
    ended.map((o) => [o.order_id, o.state]),
    [[claimedOrder.order_id, 'cancelled']],
  )

  // The release's time is rounded up to the millisecond (grants.ts): an order submitted in the
  // same millisecond, before it, is cancelled; one submitted at or after the time given stays.
  const deviceId = `dev-${randomUUID().slice(0, 8)}`
  const order = await submitted(deviceId)
  assert.deepEqual(
    await tx((trx) => orders.cancelDeviceOrders(trx, deviceId, new Date(order.submitted_at.getTime() - 1))),
    [],
    'submitted after the release: the next renter keeps it',
  )
  const cancelled = await tx((trx) => orders.cancelDeviceOrders(trx, deviceId, new Date(order.submitted_at.getTime() + 1)))
  assert.deepEqual(
    cancelled.map((o) => [o.order_id, o.state]),
    [[order.order_id, 'cancelled']],
  )
})

test(`expiry sweep: an unpaid order past its deadline expires; one its platform says is paid, or cannot answer for, waits (${DATABASE_KIND})`, async () => {
  const due = await submitted(undefined, 0)
  const paidAtPlatform = await awaitingPastDeadline()
  const unknownAtPlatform = await awaitingPastDeadline()
  const notDue = await submitted()
  const verdicts = new Map<string, orders.PrepayVerdict>([
    [paidAtPlatform.order_id, 'paid'],
    [unknownAtPlatform.order_id, 'unknown'],
  ])
  const asked: string[] = []
  const sweep = await orders.expireDue(service.db, async (order) => (asked.push(order.order_id), verdicts.get(order.order_id) ?? 'unpaid'), { paidMs: 60_000, unknownMs: 60_000 }, new Date())
  assert.equal((await orders.get(service.db, due.order_id)).state, 'expired')
  assert.equal((await orders.get(service.db, paidAtPlatform.order_id)).state, 'awaiting_payment', 'expiry never races a payment made in time')
  assert.equal((await orders.get(service.db, unknownAtPlatform.order_id)).state, 'awaiting_payment')
  assert.equal((await orders.get(service.db, notDue.order_id)).state, 'submitted')
  assert.ok(!asked.includes(due.order_id), 'a submitted order has no platform to ask')
  assert.deepEqual(sweep.deferred.map((d) => d.verdict).sort(), ['paid', 'unknown'])

  asked.length = 0
  await orders.expireDue(service.db, async (order) => (asked.push(order.order_id), 'unpaid'), { paidMs: 60_000, unknownMs: 60_000 }, new Date())
  assert.ok(!asked.includes(paidAtPlatform.order_id), 'a deferred order is not asked again before its recheck time')
})
