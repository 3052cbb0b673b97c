// Business rules of payment orders: an explicit state machine (an illegal transition is
// FAILED_PRECONDITION), the earliest waiting order first, and every step that must reach another
// party written to the outbox in the same transaction as the state change that needs it.
import { context, trace } from '@opentelemetry/api'
import type { Kysely, Transaction } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { inTransaction } from '../runtime/database.ts'
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import { type PaymentResultFields, verifyPaymentResult } from '../runtime/payment-signature.ts'
import { derivedRequestId } from '../runtime/idempotency.ts'
import { enqueue } from '../runtime/outbox.ts'
import { captureContext, restoreContext } from '../runtime/trace-context.ts'
import * as store from './store/repository.ts'
import type { OrderStateColumn, PaymentDatabase } from './store/tables.ts'

type Db = Kysely<PaymentDatabase>
type Trx = Transaction<PaymentDatabase>
export type OrderState = OrderStateColumn

/** Which states each state may move to. */
export const TRANSITIONS: Readonly<Record<OrderState, readonly OrderState[]>> = {
  submitted: ['fetched', 'cancelled', 'expired'],
  fetched: ['awaiting_payment', 'cancelled', 'expired'],
  awaiting_payment: ['paid', 'failed', 'cancelled', 'expired'],
  paid: ['effective', 'failed'],
  failed: ['refunded'],
  // A payment that lands after the order ended is refunded...
  cancelled: ['failed'],
  // ...unless it completed at the platform by the order's deadline (the platform's signed
  // completion time): then it counts, however late its report arrives.
  expired: ['paid', 'failed'],
  effective: [],
  refunded: [],
}

export const TOPICS = {
  fulfil: 'fulfil',
  refund: 'refund',
  cancelPrepay: 'cancel-prepay',
  event: 'event',
  /** A submitted order to the enrolled terminals of the device's account: their streams, the push relay. */
  push: 'push',
  /** A claimed order to the account's other enrolled terminals. */
  claimed: 'claimed',
} as const

const sources = (to: OrderState): OrderState[] => (Object.keys(TRANSITIONS) as OrderState[]).filter((from) => TRANSITIONS[from].includes(to))

/** Moves an order to `to` if its current state allows it; otherwise FAILED_PRECONDITION naming both states. */
export async function transition(db: Db, orderId: string, to: OrderState, changes: Parameters<typeof store.updateOrder>[3] = {}): Promise<store.OrderRow> {
  // No state moves to SUBMITTED: refused below, never an empty `in ()` the database cannot parse.
  const from = sources(to)
  const moved = from.length > 0 ? await store.updateOrder(db, orderId, from, { ...changes, state: to }) : undefined
  if (moved) {
    trace.getActiveSpan()?.addEvent('order state', { 'cloudpay.order_id': orderId, 'cloudpay.order_state': to })
    return moved
  }
  const current = await store.findOrder(db, orderId)
  if (!current) throw new NotFoundError('ORDER_NOT_FOUND', `order_id: no order ${quote(orderId)}`)
  throw new FailedPreconditionError('ILLEGAL_TRANSITION', `order ${orderId} is ${current.state}; it cannot become ${to}`, { state: current.state })
}

export function isFinal(state: OrderState): boolean {
  return TRANSITIONS[state].length === 0
}

export async function submit(
  db: Db,
  input: {
    orderId: string
    deviceId: string
    appOrderId: string
    amountMinor: bigint
    currencyCode: string
    description: string
    merchantId: string
    collectionAccounts: Record<string, string>
  },
  orderTtlMs: number,
  now: Date,
): Promise<store.OrderRow> {
  const row = await store.insertOrder(db, {
    order_id: input.orderId,
    device_id: input.deviceId,
    app_order_id: input.appOrderId,
    amount_minor: input.amountMinor,
    currency_code: input.currencyCode,
    description: input.description,
    merchant_id: input.merchantId,
    collection_accounts: input.collectionAccounts,
    expires_at: new Date(now.getTime() + orderTtlMs),
    // The submitting call's trace becomes the order's: every later step continues it.
    trace_context: captureContext(),
  })
  if (!row) throw new AlreadyExistsError('ORDER_ALREADY_SUBMITTED', `app_order_id ${input.appOrderId} was already submitted`)
  // Pushed to the account's own terminals, in the order's trace (the outbox keeps the context).
  // The device goes with it (an order's device never changes): the hand-off asks for terminals first.
  await enqueue(db, TOPICS.push, { order_id: row.order_id, device_id: row.device_id }, derivedRequestId(row.order_id, 'push'))
  return row
}

/** The order; with `currentRentalOnly`, a previous renter's order of the device is not found either. */
export async function get(db: Db, orderId: string, scope: store.RentalScope = {}): Promise<store.OrderRow> {
  return (await store.findOrder(db, orderId, scope)) ?? notFound(orderId)
}

/** An app order placed on the device before its current rental began (rental-boundary.ts). */
export function isOfEarlierRental(db: Db, deviceId: string, placedAt: Date | undefined): Promise<boolean> {
  return placedAt ? store.rentalBeganAfter(db, deviceId, placedAt) : Promise.resolve(false)
}

export function notFound(orderId: string): never {
  throw new NotFoundError('ORDER_NOT_FOUND', `order_id: no order ${quote(orderId)}`)
}

export function findBySerial(db: Db, platformId: string, serialNumber: string, scope: store.RentalScope = {}): Promise<store.OrderRow | undefined> {
  return store.findOrderBySerial(db, platformId, serialNumber, scope)
}

export function list(db: Db, deviceId: string, beforeSeq: bigint | undefined, limit: number, scope: store.RentalScope = {}) {
  return store.listOrders(db, deviceId, beforeSeq, limit, scope)
}

/** The device's earliest order not yet fetched, now FETCHED. */
export async function fetchNext(trx: Trx, deviceId: string, now: Date): Promise<store.OrderRow> {
  const fetched = await store.fetchEarliestWaiting(trx, deviceId, now)
  if (!fetched) throw new NotFoundError('NO_ORDER_WAITING', `device ${deviceId} has no order waiting to be fetched`)
  trace.getActiveSpan()?.addEvent('order state', { 'cloudpay.order_id': fetched.order_id, 'cloudpay.order_state': 'fetched' })
  return fetched
}

/**
 * Claims a pushed order for an enrolled terminal (the caller checked it may): the first claim
 * wins; the terminal that won already gets its order again; anyone else is refused. The
 * account's other terminals are told through the outbox.
 */
export async function claim(trx: Trx, orderId: string, terminalId: string, gesture: string, now: Date): Promise<store.OrderRow> {
  const claimed = await store.claimOrder(trx, orderId, { terminalId, gesture, now })
  if (claimed) {
    trace.getActiveSpan()?.addEvent('order state', { 'cloudpay.order_id': orderId, 'cloudpay.order_state': 'fetched', 'cloudpay.claim_gesture': gesture })
    await enqueue(trx, TOPICS.claimed, { order_id: orderId }, derivedRequestId(orderId, 'claimed'))
    return claimed
  }
  const order = await get(trx, orderId)
  if (order.claimed_by === terminalId) return order
  if (order.claimed_by !== null) throw new FailedPreconditionError('ORDER_ALREADY_CLAIMED', `order ${orderId} was claimed by another terminal of the account`)
  if (order.state === 'submitted') throw new FailedPreconditionError('ORDER_EXPIRED', `order ${orderId} expired at ${order.expires_at.toISOString()}`)
  throw new FailedPreconditionError('ORDER_NOT_CLAIMABLE', `order ${orderId} is ${order.state}; only a submitted order can be claimed`, { state: order.state })
}

/** Whether a pushed order still waits for a terminal (nothing to push once it was fetched, claimed or ended). */
export const isWaiting = (order: store.OrderRow): boolean => order.state === 'submitted' && order.claimed_by === null

/**
 * Ends the pending claims of a terminal removed from its account: its unpaid orders claimed
 * before the removal are cancelled (prepays at platforms too). Call in a transaction.
 */
export async function endTerminalClaims(trx: Trx, terminalId: string, claimedBefore: Date): Promise<store.OrderRow[]> {
  const cancelled: store.OrderRow[] = []
  for (const order of await store.lockUnpaidClaimedBy(trx, terminalId, claimedBefore)) {
    cancelled.push(await cancel(trx, order.order_id, 'the terminal that claimed it was removed from the account'))
  }
  return cancelled
}

/** Checks that an order can be sent to a platform now; returns its collection account there. */
export function assertPrepayable(order: store.OrderRow, platformId: string, now: Date): string {
  if (order.state !== 'fetched')
    throw new FailedPreconditionError('ILLEGAL_TRANSITION', `order ${order.order_id} is ${order.state}; only a fetched order can be prepaid`, { state: order.state })
  if (order.expires_at <= now) throw new FailedPreconditionError('ORDER_EXPIRED', `order ${order.order_id} expired at ${order.expires_at.toISOString()}`)
  const collection = order.collection_accounts[platformId]
  if (!collection)
    throw new FailedPreconditionError(
      'PLATFORM_NOT_ACCEPTED',
      `the merchant does not accept platform ${platformId}; accepted: ${Object.keys(order.collection_accounts).join(', ')}`,
    )
  return collection
}

/** The platform's transaction for the order, and the key its payment result must be signed with. */
export interface Prepay {
  readonly platformId: string
  readonly serialNumber: string
  readonly resultKeyId: string
  readonly resultPublicKey: Uint8Array
}

export function recordPrepay(trx: Trx, orderId: string, prepay: Prepay): Promise<store.OrderRow> {
  return transition(trx, orderId, 'awaiting_payment', {
    platform_id: prepay.platformId,
    serial_number: prepay.serialNumber,
    result_key_id: prepay.resultKeyId,
    result_public_key: prepay.resultPublicKey,
  })
}

/** A payment result counts only when signed with the key the platform gave for this very prepay. */
export function assertResultSignedByPrepayKey(order: store.OrderRow, keyId: string, fields: Omit<PaymentResultFields, 'keyId'>, signature: string): void {
  const signedByPrepayKey = order.result_key_id !== null && order.result_public_key !== null && order.result_key_id === keyId
  if (!signedByPrepayKey || !verifyPaymentResult(order.result_public_key!, { ...fields, keyId }, signature)) {
    throw new PermissionDeniedError('BAD_SIGNATURE', `signature does not verify under the result key the platform gave for order ${order.order_id}'s prepay`)
  }
}

async function tellDevice(trx: Trx, order: store.OrderRow, kind: EventKind): Promise<void> {
  // The order's submission time places the event in the order's rental of the device (rental-boundary.ts).
  const payload = { device_id: order.device_id, kind: String(kind), subject_id: order.order_id, subject_created_at: order.submitted_at.toISOString() }
  await enqueue(trx, TOPICS.event, payload, derivedRequestId(order.order_id, 'event', String(kind)))
}

/**
 * Applies a platform's report that the money moved, completed at `completedAt` (the platform's
 * time, covered by its signature). Duplicates and reordered reports change nothing. A payment of
 * the amount due, completed by the order's deadline, makes an awaiting order PAID and queues the
 * hand-off, and so it does for an order expired meanwhile (the payment was in time; its report
 * was late). Any other payment (another amount, after the deadline, or of a cancelled order) is refunded.
 */
export async function applyPayment(
  trx: Trx,
  platformId: string,
  serialNumber: string,
  paid: { currencyCode: string; amountMinor: bigint },
  completedAt: Date,
): Promise<store.OrderRow> {
  return applyPaymentTo(trx, await lockBySerial(trx, platformId, serialNumber), paid, completedAt)
}

/** The order paid with this platform transaction, locked for the rest of the transaction. */
export async function lockBySerial(trx: Trx, platformId: string, serialNumber: string): Promise<store.OrderRow> {
  const order = await store.lockOrderBySerial(trx, platformId, serialNumber)
  if (!order) throw new NotFoundError('ORDER_NOT_FOUND', `no order awaits payment ${serialNumber} on platform ${platformId}`)
  return order
}

/** applyPayment() to an order the caller locked (lockBySerial). */
export async function applyPaymentTo(trx: Trx, order: store.OrderRow, paid: { currencyCode: string; amountMinor: bigint }, completedAt: Date): Promise<store.OrderRow> {
  if (order.state !== 'awaiting_payment' && order.state !== 'cancelled' && order.state !== 'expired') return order // already handled: a duplicate or late report
  const amountDue = paid.currencyCode === order.currency_code && paid.amountMinor === order.amount_minor
  const inTime = completedAt.getTime() <= order.expires_at.getTime()
  if (amountDue && inTime && order.state !== 'cancelled') {
    const moved = await transition(trx, order.order_id, 'paid', { end_reason: '' })
    await enqueue(trx, TOPICS.fulfil, fulfilPayload(moved), derivedRequestId(order.order_id, 'fulfil'))
    return moved
  }
  const reason = !amountDue
    ? `paid ${paid.amountMinor} ${paid.currencyCode}, not the amount due`
    : order.state === 'cancelled'
      ? 'paid after the order was cancelled'
      : `paid at ${completedAt.toISOString()}, after the order's deadline ${order.expires_at.toISOString()}`
  return refundLater(trx, order, reason)
}

/**
 * What the fulfil hand-off tells AppService, fixed once the order is paid (none of it changes
 * after), so the hand-off need not read the order back. Only the hand-off itself moves a paid order on.
 */
function fulfilPayload(order: store.OrderRow): Record<string, string> {
  return {
    order_id: order.order_id,
    app_order_id: order.app_order_id,
    device_id: order.device_id,
    currency_code: order.currency_code,
    amount_minor: String(order.amount_minor),
    platform_id: order.platform_id!,
    serial_number: order.serial_number!,
  }
}

/** The paid order a fulfil hand-off carries; undefined for one queued before hand-offs carried it. */
export function paidOrderOf(payload: Record<string, string>) {
  const { order_id, app_order_id, device_id, currency_code, amount_minor, platform_id, serial_number } = payload
  if (!order_id || !app_order_id || !device_id || !currency_code || !amount_minor || !platform_id || !serial_number) return undefined
  return { order_id, app_order_id, device_id, currency_code, amount_minor: BigInt(amount_minor), platform_id, serial_number }
}

/** Ends an order as FAILED and queues the refund (and the instance is told). */
export async function refundLater(trx: Trx, order: store.OrderRow, reason: string): Promise<store.OrderRow> {
  const failed = await transition(trx, order.order_id, 'failed', { end_reason: reason })
  await enqueue(trx, TOPICS.refund, { order_id: order.order_id }, derivedRequestId(order.order_id, 'refund'))
  await tellDevice(trx, failed, EventKind.EVENT_KIND_ORDER_FAILED)
  return failed
}

/**
 * A paid order becomes effective, and the device is told in the same transaction (an instance
 * woken by ORDER_EFFECTIVE reads the order EFFECTIVE, never still PAID); in any other state
 * (refunded meanwhile, a duplicate) it is left as it is.
 */
export async function markEffective(trx: Trx, orderId: string): Promise<store.OrderRow | undefined> {
  const effective = await moveIf(trx, orderId, 'paid', 'effective')
  if (effective) await tellDevice(trx, effective, EventKind.EVENT_KIND_ORDER_EFFECTIVE)
  return effective
}

/** A failed order becomes refunded; in any other state it is left as it is. */
export async function markRefunded(trx: Trx, orderId: string): Promise<void> {
  await moveIf(trx, orderId, 'failed', 'refunded')
}

/** One conditional statement, no lock read first: the row moves only if it is still in `from`. */
async function moveIf(trx: Trx, orderId: string, from: OrderState, to: OrderState): Promise<store.OrderRow | undefined> {
  const moved = await store.updateOrder(trx, orderId, [from], { state: to })
  if (moved) trace.getActiveSpan()?.addEvent('order state', { 'cloudpay.order_id': orderId, 'cloudpay.order_state': to })
  return moved
}

/** Cancels an unpaid order; a prepay already at a platform is cancelled there too. */
export async function cancel(trx: Trx, orderId: string, reason: string, endState: 'cancelled' | 'expired' = 'cancelled'): Promise<store.OrderRow> {
  const before = await store.lockOrder(trx, orderId)
  if (!before) throw new NotFoundError('ORDER_NOT_FOUND', `order_id: no order ${quote(orderId)}`)
  const ended = await transition(trx, orderId, endState, { end_reason: reason })
  if (before.state === 'awaiting_payment') await enqueue(trx, TOPICS.cancelPrepay, { order_id: orderId }, derivedRequestId(orderId, 'cancel-prepay'))
  await tellDevice(trx, ended, EventKind.EVENT_KIND_ORDER_FAILED)
  return ended
}

/**
 * Cancels every unpaid order of a released (or re-rented) device submitted before the release,
 * so neither renter's terminal can pay the other's; orders submitted later stay. The release
 * begins the device's next rental, whose instance and terminals see none of the earlier orders
 * (store.RentalScope). Call in a transaction.
 */
export async function cancelDeviceOrders(trx: Trx, deviceId: string, submittedBefore: Date): Promise<store.OrderRow[]> {
  await store.recordRentalBegan(trx, deviceId, submittedBefore)
  const cancelled: store.OrderRow[] = []
  for (const order of await store.lockUnpaidOfDevice(trx, deviceId, submittedBefore)) {
    cancelled.push(await cancel(trx, order.order_id, 'the device was released or re-rented before the order was paid'))
  }
  return cancelled
}

/**
 * What the platform says about an order's prepay at the order's deadline: paid (its report is on
 * the way), not paid (expired, cancelled, unknown there, or still pending past our deadline), or
 * it could not be asked.
 */
export type PrepayVerdict = 'paid' | 'unpaid' | 'unknown'

export interface ExpiryRechecks {
  /** How long to leave an order the platform says is paid before asking again (its report should land first). */
  readonly paidMs: number
  /** How long to leave an order whose platform could not be asked before trying again. */
  readonly unknownMs: number
}

export interface ExpirySweep {
  readonly expired: number
  /** Orders past their deadline left as they are for now, and why. */
  readonly deferred: readonly { readonly order: store.OrderRow; readonly verdict: Exclude<PrepayVerdict, 'unpaid'> }[]
}

/**
 * Expires unpaid orders past their deadline, earliest first. An order awaiting payment is
 * expired only once its platform says the prepay was not paid: expiry never races a payment made
 * in time (its report may arrive after the deadline). One the platform says is paid, or whose
 * platform cannot be asked, is left awaiting and looked at again later. Each order's check runs
 * in the order's own trace.
 */
export async function expireDue(db: Db, prepayAtPlatform: (order: store.OrderRow) => Promise<PrepayVerdict>, rechecks: ExpiryRechecks, now: Date): Promise<ExpirySweep> {
  let expired = 0
  const deferred: ExpirySweep['deferred'][number][] = []
  for (const order of await store.findExpired(db, now, 100)) {
    await context.with(restoreContext(order.trace_context), async () => {
      if (order.state === 'awaiting_payment' && order.platform_id && order.serial_number) {
        const verdict = await prepayAtPlatform(order)
        if (verdict !== 'unpaid') {
          await store.deferExpiry(db, order.order_id, new Date(now.getTime() + (verdict === 'paid' ? rechecks.paidMs : rechecks.unknownMs)))
          deferred.push({ order, verdict })
          return
        }
      }
      try {
        await inTransaction(db, (trx) => cancel(trx, order.order_id, 'not paid in time', 'expired'))
        expired++
      } catch (error) {
        if (!(error instanceof FailedPreconditionError)) throw error // moved on meanwhile (paid, cancelled)
      }
    })
  }
  return { expired, deferred }
}
