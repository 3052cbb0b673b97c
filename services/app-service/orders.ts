// Business rules of application orders: the price is always the catalog's (quantity x unit price
// minus the per-unit discount), and a paid order takes effect exactly once, delivering its items.
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { FailedPreconditionError, NotFoundError, quote } from '../runtime/errors.ts'
import { sessionEnded } from './accounts.ts'
import * as store from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

type Db = Kysely<AppDatabase>

export const MERCHANT_ID = 'demo-shop'

/**
 * Places an order at the catalog's price for the session's account, under its assignment held
 * until the transaction ends (an EndDeviceSessions waits, then rejects it unpaid); returned with the
 * merchant's collection accounts; SESSION_ENDED if the assignment ended.
 */
export async function createOrder(
  trx: Transaction<AppDatabase>,
  input: { appAccountId: string; deviceId: string; assignmentId: string; itemId: string; quantity: number },
): Promise<OrderWithCollection> {
  const item = await store.findCatalogItem(trx, input.itemId)
  if (!item) throw new NotFoundError('ITEM_NOT_FOUND', `item_id: no catalog item ${quote(input.itemId)}`)
  const quantity = BigInt(input.quantity)
  const discount = item.unit_discount_minor * quantity
  const created = await store.insertOrderUnderAssignment(trx, {
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
  if (!created) throw sessionEnded()
  return created
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

/** An order and the merchant's collection accounts (what a reply shows with it). */
export type OrderWithCollection = { order: store.AppOrderRow; collection: store.CollectionAccountRow[] }

/** An order with the merchant's collection accounts, read in one statement. */
/**
 * The order and the collection accounts; with `currentRentalOnly` (an instance asking), an order
 * placed under a rental of the device that has ended is not found either: the next renter's
 * instance does not read the previous renter's purchases.
 */
export async function getOrderWithCollection(db: Db, appOrderId: string, scope: { currentRentalOnly?: boolean } = {}): Promise<OrderWithCollection> {
  const found = await store.findOrderWithCollection(db, appOrderId)
  if (!found || (scope.currentRentalOnly && found.assignmentEnded)) throw new NotFoundError('ORDER_NOT_FOUND', `app_order_id: no order ${quote(appOrderId)}`)
  return found
}

/**
 * pending -> effective and the items delivered, in the caller's transaction, only when the
 * payment matches the amount due (one conditional UPDATE, no read first). An effective order is
 * returned as is (delivered by an earlier hand-off: never twice). A payment that does not match
 * is refused with AMOUNT_MISMATCH: the caller rejects the order outside the rolled-back
 * transaction (rejectMismatched), and PaymentManagement refunds the payer.
 */
export async function fulfil(
  trx: Db,
  appOrderId: string,
  payment: { paymentOrderId: string; platformId: string; serialNumber: string; paid: { currencyCode: string; amountMinor: bigint } },
): Promise<OrderWithCollection> {
  // Effective and its items delivered, together, exactly once.
  const effective = await store.markOrderEffectiveDelivering(trx, appOrderId, payment)
  if (effective) return effective
  const found = await getOrderWithCollection(trx, appOrderId)
  const now = found.order
  if (now.state === 'effective') return found
  if (now.state === 'rejected') throw new FailedPreconditionError('ORDER_REJECTED', `order ${appOrderId} was rejected`)
  throw new FailedPreconditionError(
    AMOUNT_MISMATCH,
    `paid_amount ${payment.paid.amountMinor} ${payment.paid.currencyCode} does not match the order's amount due ${now.amount_due_minor} ${now.currency_code}; the order is rejected`,
  )
}

const AMOUNT_MISMATCH = 'AMOUNT_MISMATCH'

/** After fulfil() refused a payment that does not match: the order is rejected (kept, unlike the fulfilling transaction). */
export async function rejectMismatched(db: Db, appOrderId: string, error: unknown): Promise<void> {
  if (error instanceof FailedPreconditionError && error.reason === AMOUNT_MISMATCH) await store.markOrderRejected(db, appOrderId)
}

export function inventory(db: Db, appAccountId: string, afterItemId: string | undefined, limit: number) {
  return store.listInventory(db, appAccountId, afterItemId, limit)
}
