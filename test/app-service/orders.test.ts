// AppService's rules (services/app-service/orders.ts, accounts.ts, catalog.ts) on a real database,
// no gRPC: the price is always the catalog's, a paid order takes effect and delivers exactly once
// and only for the amount due, and sessions live no longer than their expiry or their assignment.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import type { Kysely } from 'kysely'
import * as accounts from '../../services/app-service/accounts.ts'
import * as catalog from '../../services/app-service/catalog.ts'
import * as orders from '../../services/app-service/orders.ts'
import { appService } from '../../services/app-service/server.ts'
import type { AppDatabase } from '../../services/app-service/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { DATABASE_KIND, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<AppDatabase>(appService)
const HOUR_MS = 3_600_000

/** A new guest account on a new device, with a live session under a new assignment. */
async function player() {
  const account = await accounts.createGuestAccount(service.db)
  const deviceId = `dev-${randomUUID().slice(0, 8)}`
  const assignmentId = randomUUID()
  const session = await inTransaction(service.db, (trx) => accounts.openSession(trx, account.app_account_id, deviceId, assignmentId, HOUR_MS, new Date()))
  return { account, deviceId, assignmentId, session }
}

type Player = Awaited<ReturnType<typeof player>>

const placeUnder = (p: Player, assignmentId: string, itemId: string, quantity: number) =>
  inTransaction(service.db, (trx) => orders.createOrder(trx, { appAccountId: p.account.app_account_id, deviceId: p.deviceId, assignmentId, itemId, quantity }))

const order = async (p: Player, itemId: string, quantity: number) => {
  const created = await placeUnder(p, p.assignmentId, itemId, quantity)
  assert.deepEqual(created.collection, (await orders.getOrderWithCollection(service.db, created.order.app_order_id)).collection, 'the insert returns the collection accounts a read shows')
  return created.order
}

const paymentFor = (amountMinor: bigint, currencyCode = 'USD') => ({
  paymentOrderId: randomUUID(),
  platformId: 'alphapay',
  serialNumber: `TX${randomUUID()}`,
  paid: { currencyCode, amountMinor },
})
const fulfil = async (appOrderId: string, payment: ReturnType<typeof paymentFor>) => (await inTransaction(service.db, (trx) => orders.fulfil(trx, appOrderId, payment))).order

async function inventoryOf(db: Kysely<AppDatabase>, appAccountId: string): Promise<Record<string, bigint>> {
  return Object.fromEntries((await orders.inventory(db, appAccountId, undefined, 100)).map((row) => [row.item_id, BigInt(row.quantity)]))
}

test(`the price is the catalog's: quantity x unit price less the per-unit discount (${DATABASE_KIND})`, async () => {
  const p = await player()
  const items = await catalog.listCatalogItems(service.db, undefined, 10)
  const pack = items.find((item) => item.item_id === 'gem-pack-550')!
  assert.ok(pack.unit_discount_minor > 0n, 'the seeded catalog has a discounted item')
  const created = await order(p, 'gem-pack-550', 3)
  assert.equal(created.amount_due_minor, 3n * pack.unit_price_minor - 3n * pack.unit_discount_minor)
  assert.equal(created.discount_minor, 3n * pack.unit_discount_minor)
  assert.deepEqual([created.state, created.currency_code, created.description], ['pending', pack.currency_code, `3 x ${pack.title}`])
  await refusedWith(order(p, 'no-such-item', 1), 'ITEM_NOT_FOUND')
  assert.deepEqual(
    (await catalog.listCatalogItems(service.db, items[0]!.item_id, 10)).map((i) => i.item_id),
    items.slice(1).map((i) => i.item_id),
    'listed after a cursor, in id order',
  )
})

test(`a paid order takes effect once: the items are delivered once however often the hand-off arrives (${DATABASE_KIND})`, async () => {
  const p = await player()
  const created = await order(p, 'gem-pack-100', 2)
  const payment = paymentFor(created.amount_due_minor)
  const effective = await fulfil(created.app_order_id, payment)
  assert.deepEqual([effective.state, effective.serial_number], ['effective', payment.serialNumber])
  const again = await fulfil(created.app_order_id, payment)
  assert.equal(again.state, 'effective')
  await fulfil(created.app_order_id, paymentFor(created.amount_due_minor))
  assert.deepEqual(await inventoryOf(service.db, p.account.app_account_id), { 'gem-pack-100': 2n }, 'delivered exactly once')

  const second = await order(p, 'gem-pack-100', 1)
  await fulfil(second.app_order_id, paymentFor(second.amount_due_minor))
  assert.deepEqual(await inventoryOf(service.db, p.account.app_account_id), { 'gem-pack-100': 3n }, 'a second order adds to the inventory')
})

test(`a payment that is not the amount due delivers nothing and rejects the order (${DATABASE_KIND})`, async () => {
  const p = await player()
  const wrongPayments = [(due: bigint) => paymentFor(due - 1n), (due: bigint) => paymentFor(due + 1n), (due: bigint) => paymentFor(due, 'EUR')]
  for (const wrong of wrongPayments) {
    const created = await order(p, 'gem-pack-100', 1)
    const refused = await refusedWith(fulfil(created.app_order_id, wrong(created.amount_due_minor)), 'AMOUNT_MISMATCH')
    assert.equal((await orders.getOrder(service.db, created.app_order_id)).state, 'pending', 'the refusing transaction changed nothing')
    await orders.rejectMismatched(service.db, created.app_order_id, refused)
    assert.equal((await orders.getOrder(service.db, created.app_order_id)).state, 'rejected')
    await refusedWith(fulfil(created.app_order_id, paymentFor(created.amount_due_minor)), 'ORDER_REJECTED')
  }
  assert.deepEqual(await inventoryOf(service.db, p.account.app_account_id), {}, 'nothing delivered')
  await refusedWith(orders.getOrder(service.db, 'ord-none'), 'ORDER_NOT_FOUND')
})

test(`sessions: live on their own device until expires_at; another device's token, an unknown one or an expired one is refused (${DATABASE_KIND})`, async () => {
  const p = await player()
  assert.equal((await accounts.accountOfSession(service.db, p.session.token, p.deviceId, new Date())).app_account_id, p.account.app_account_id)
  await refusedWith(accounts.accountOfSession(service.db, p.session.token, 'dev-other', new Date()), 'SESSION_INVALID')
  await refusedWith(accounts.accountOfSession(service.db, 'not-a-session', p.deviceId, new Date()), 'SESSION_INVALID')
  const instant = await inTransaction(service.db, (trx) => accounts.openSession(trx, p.account.app_account_id, p.deviceId, p.assignmentId, 0, new Date()))
  await refusedWith(accounts.accountOfSession(service.db, instant.token, p.deviceId, new Date()), 'SESSION_EXPIRED')
  assert.match(p.account.display_name, /^cloud platform guest \d{6}$/)
  assert.deepEqual(p.account.archive, accounts.FRESH_ARCHIVE)
})

test(`an ended assignment ends its sessions and pending orders, and nothing opens under it again (${DATABASE_KIND})`, async () => {
  const p = await player()
  const pending = await order(p, 'gem-pack-100', 1)
  const paid = await order(p, 'gem-pack-100', 1)
  await fulfil(paid.app_order_id, paymentFor(paid.amount_due_minor))
  const next = await inTransaction(service.db, (trx) => accounts.openSession(trx, p.account.app_account_id, p.deviceId, randomUUID(), HOUR_MS, new Date()))

  const ended = await inTransaction(service.db, (trx) => accounts.endAssignment(trx, p.deviceId, p.assignmentId, new Date(), new Date()))
  assert.equal(ended, 1, "the assignment's one session")
  assert.equal(await orders.rejectUnpaidOfAssignment(service.db, p.deviceId, accounts.endedWith(p.assignmentId)), 1)
  assert.equal((await orders.getOrder(service.db, pending.app_order_id)).state, 'rejected')
  assert.equal((await orders.getOrder(service.db, paid.app_order_id)).state, 'effective', 'an effective order stays effective')

  await refusedWith(accounts.accountOfSession(service.db, p.session.token, p.deviceId, new Date()), 'SESSION_ENDED')
  await refusedWith(
    inTransaction(service.db, (trx) => accounts.openSession(trx, p.account.app_account_id, p.deviceId, p.assignmentId, HOUR_MS, new Date())),
    'ASSIGNMENT_ENDED',
  )
  // No order under the ended assignment; a later assignment's session lives on and orders.
  await refusedWith(placeUnder(p, p.assignmentId, 'gem-pack-100', 1), 'SESSION_ENDED')
  const { session } = await accounts.sessionOf(service.db, next.token, p.deviceId, new Date())
  assert.equal((await placeUnder(p, session.assignment_id, 'gem-pack-100', 1)).order.state, 'pending')
  assert.equal(await inTransaction(service.db, (trx) => accounts.endAssignment(trx, p.deviceId, p.assignmentId, new Date(), new Date())), 0, 'ending it again ends nothing more')
})
