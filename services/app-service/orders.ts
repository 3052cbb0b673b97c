// Business rules of application orders: the price is always the catalog's (quantity x unit price
// minus the per-unit discount), and a paid order takes effect exactly once, delivering its items.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { FailedPreconditionError, NotFoundError, quote } from '../runtime/errors.ts'
import * as store from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

type Db = Kysely<AppDatabase>

export const MERCHANT_ID = 'demo-shop'

export async function createOrder(db: Db, input: { appAccountId: string; deviceId: string; assignmentId: string; itemId: string; quantity: number }): Promise<store.AppOrderRow> {
  const item = await store.findCatalogItem(db, input.itemId)
  if (!item) throw new NotFoundError('ITEM_NOT_FOUND', `item_id: no catalog item ${quote(input.itemId)}`)
  const quantity = BigInt(input.quantity)
  const discount = item.unit_discount_minor * quantity
  return store.insertOrder(db, {
    app_order_id: `ord-${randomUUID()}`,
    app_account_id: input.appAccountId,
    device_id: input.deviceId,
    assignment_id: input.assignmentId,
    item_id: item.item_id,
    quantity: input.quantity,
    currency_code: item.currency_code,
    unit_price_minor: item.unit_price_minor,
    discount_minor: discount,
    amount_due_minor: item.unit_price_minor * quantity - discount,
    description: `${input.quantity} x ${item.title}`,
  })
}

/** Rejects the unpaid orders of an ended assignment (a payment that lands anyway is refunded); returns how many. */
export function rejectUnpaidOfAssignment(db: Db, deviceId: string, assignmentIds: readonly string[]): Promise<number> {
  return store.rejectPendingOrders(db, deviceId, assignmentIds)
}

export async function getOrder(db: Db, appOrderId: string): Promise<store.AppOrderRow> {
  const order = await store.findOrder(db, appOrderId)
  if (!order) throw new NotFoundError('ORDER_NOT_FOUND', `app_order_id: no order ${quote(appOrderId)}`)
  return order
}

export function collectionAccounts(db: Db) {
  return store.listCollectionAccounts(db)
}

/**
 * Refuses a payment that does not match the order (the order is rejected; the payer is refunded
 * by PaymentManagement). Checked before the fulfilling transaction so the rejection is kept.
 */
export async function assertPaymentMatches(db: Db, order: store.AppOrderRow, paid: { currencyCode: string; amountMinor: bigint }): Promise<void> {
  if (order.state === 'rejected') throw new FailedPreconditionError('ORDER_REJECTED', `order ${order.app_order_id} was rejected`)
  if (paid.currencyCode === order.currency_code && paid.amountMinor === order.amount_due_minor) return
  await store.markOrderRejected(db, order.app_order_id)
  throw new FailedPreconditionError(
    'AMOUNT_MISMATCH',
    `paid_amount ${paid.amountMinor} ${paid.currencyCode} does not match the order's amount due ${order.amount_due_minor} ${order.currency_code}; the order is rejected`,
  )
}

/** pending -> effective and the items delivered, in one transaction; an effective order is returned as is. */
export async function fulfil(trx: Db, order: store.AppOrderRow, payment: { paymentOrderId: string; platformId: string; serialNumber: string }): Promise<store.AppOrderRow> {
  const effective = await store.markOrderEffective(trx, order.app_order_id, payment)
  if (!effective) {
    const now = await getOrder(trx, order.app_order_id)
    if (now.state === 'effective') return now // delivered by an earlier hand-off: never twice
    throw new FailedPreconditionError('ORDER_REJECTED', `order ${order.app_order_id} was rejected`)
  }
  await store.addToInventory(trx, effective.app_account_id, effective.item_id, BigInt(effective.quantity))
  return effective
}

export function inventory(db: Db, appAccountId: string, afterItemId: string | undefined, limit: number) {
  return store.listInventory(db, appAccountId, afterItemId, limit)
}
