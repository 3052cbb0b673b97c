// SQL of the payment_management schema. Functions take the database or a transaction; the ones
// that lock rows take only a transaction.
import { type ExpressionBuilder, type Kysely, type Selectable, sql, type Transaction, type Updateable } from 'kysely'
import { type AnswerColumn, readingStoredAnswer, type StoredAnswer } from '../../runtime/idempotency.ts'
import { type QueryTemplate, queryTemplate } from '../../runtime/query-template.ts'
import type { OrdersTable, OrderStateColumn, PaymentDatabase } from './tables.ts'

type Db = Kysely<PaymentDatabase>
export type OrderRow = Selectable<OrdersTable>

/** Which orders a read may find: all, or only those of the current rental of their device. */
export interface RentalScope {
  readonly currentRentalOnly?: boolean
}

/** The order was submitted before its device's current rental began: a previous renter's. */
const ofEarlierRental = (eb: ExpressionBuilder<PaymentDatabase, 'orders'>) =>
  eb.exists(
    eb
      .selectFrom('device_rentals')
      .select(sql<number>`1`.as('one'))
      .whereRef('device_rentals.device_id', '=', 'orders.device_id')
      .whereRef('orders.submitted_at', '<', 'device_rentals.began_at'),
  )

/** When the device's current rental began (rental-boundary.ts), as a scalar subquery; null before its first release. */
export const rentalBeganAt = (eb: ExpressionBuilder<any, any>, deviceId: string) =>
  (eb as ExpressionBuilder<PaymentDatabase, never>).selectFrom('device_rentals').select('began_at').where('device_id', '=', deviceId)

/** The device's current rental began after `at`: what was made then is an earlier renter's. */
export async function rentalBeganAfter(db: Db, deviceId: string, at: Date): Promise<boolean> {
  const row = await db.selectFrom('device_rentals').select('began_at').where('device_id', '=', deviceId).where('began_at', '>', at).executeTakeFirst()
  return row !== undefined
}

/** The device's current rental began at `at` (a release); a release delivered late never moves it back. */
export async function recordRentalBegan(trx: Transaction<PaymentDatabase>, deviceId: string, at: Date): Promise<void> {
  await trx
    .insertInto('device_rentals')
    .values({ device_id: deviceId, began_at: at })
    .onConflict((oc) => oc.column('device_id').doUpdateSet({ began_at: sql`greatest(device_rentals.began_at, excluded.began_at)` }))
    .execute()
}

type NewOrder = Pick<
  OrderRow,
  'order_id' | 'device_id' | 'app_order_id' | 'amount_minor' | 'currency_code' | 'description' | 'merchant_id' | 'collection_accounts' | 'expires_at' | 'trace_context'
>

export async function insertOrder(db: Db, order: NewOrder): Promise<OrderRow | undefined> {
  return INSERT_ORDER.first(db, { ...order, collection_accounts: JSON.stringify(order.collection_accounts) })
}
const INSERT_ORDER = queryTemplate('payment-management.insertOrder', (db: Db, v: Omit<NewOrder, 'collection_accounts'> & { collection_accounts: string }) =>
  db
    .insertInto('orders')
    .values({
      order_id: v.order_id,
      device_id: v.device_id,
      app_order_id: v.app_order_id,
      amount_minor: v.amount_minor,
      currency_code: v.currency_code,
      description: v.description,
      merchant_id: v.merchant_id,
      collection_accounts: v.collection_accounts as unknown as Record<string, string>,
      expires_at: v.expires_at,
      trace_context: v.trace_context,
      state: 'submitted',
      platform_id: null,
      serial_number: null,
      fetched_at: null,
    })
    .onConflict((oc) => oc.column('app_order_id').doNothing())
    .returningAll(),
)

export async function findOrder(db: Db, orderId: string, scope: RentalScope = {}): Promise<OrderRow | undefined> {
  let query = db.selectFrom('orders').selectAll().where('order_id', '=', orderId)
  if (scope.currentRentalOnly) query = query.where((eb) => eb.not(ofEarlierRental(eb)))
  return query.executeTakeFirst()
}

/** An order and the call's stored answer, in one statement; nothing when there is no such order (orders are never deleted). */
export async function findOrderReadingAnswer(
  db: Db,
  orderId: string,
  stored: StoredAnswer<unknown>,
  scope: RentalScope = {},
): Promise<{ order: OrderRow; storedAnswer: unknown } | undefined> {
  const row = await (scope.currentRentalOnly ? FIND_CURRENT_ORDER_READING_ANSWER : FIND_ORDER_READING_ANSWER).first(db, { orderId }, stored)
  if (!row) return undefined
  const { stored_answer, ...order } = row
  return { order: order as OrderRow, storedAnswer: stored_answer }
}
const orderReadingAnswer = (db: Db, v: { orderId: string }, answer: AnswerColumn) =>
  db
    .selectFrom('orders')
    .selectAll('orders')
    .select((eb) => answer(eb))
    .where('order_id', '=', v.orderId)
const FIND_ORDER_READING_ANSWER = readingStoredAnswer('payment-management.findOrderReadingAnswer', orderReadingAnswer)
const FIND_CURRENT_ORDER_READING_ANSWER = readingStoredAnswer('payment-management.findCurrentOrderReadingAnswer', (db: Db, v: { orderId: string }, answer: AnswerColumn) =>
  orderReadingAnswer(db, v, answer).where((eb) => eb.not(ofEarlierRental(eb))),
)

export async function lockOrder(trx: Transaction<PaymentDatabase>, orderId: string): Promise<OrderRow | undefined> {
  return LOCK_ORDER.first(trx, { orderId })
}
const LOCK_ORDER = queryTemplate('payment-management.lockOrder', (trx: Db, v: { orderId: string }) =>
  trx.selectFrom('orders').selectAll().where('order_id', '=', v.orderId).forUpdate(),
)

type BySerial = { platformId: string; serialNumber: string }
const bySerial = (db: Db, v: BySerial) => db.selectFrom('orders').selectAll().where('platform_id', '=', v.platformId).where('serial_number', '=', v.serialNumber)
const FIND_ORDER_BY_SERIAL = queryTemplate('payment-management.findOrderBySerial', bySerial)
const FIND_CURRENT_ORDER_BY_SERIAL = queryTemplate('payment-management.findCurrentOrderBySerial', (db: Db, v: BySerial) =>
  bySerial(db, v).where((eb) => eb.not(ofEarlierRental(eb))),
)
const LOCK_ORDER_BY_SERIAL = queryTemplate('payment-management.lockOrderBySerial', (trx: Db, v: BySerial) => bySerial(trx, v).forUpdate())

export async function findOrderBySerial(db: Db, platformId: string, serialNumber: string, scope: RentalScope = {}): Promise<OrderRow | undefined> {
  return (scope.currentRentalOnly ? FIND_CURRENT_ORDER_BY_SERIAL : FIND_ORDER_BY_SERIAL).first(db, { platformId, serialNumber })
}

export async function lockOrderBySerial(trx: Transaction<PaymentDatabase>, platformId: string, serialNumber: string): Promise<OrderRow | undefined> {
  return LOCK_ORDER_BY_SERIAL.first(trx, { platformId, serialNumber })
}

/** The device's earliest order waiting to be fetched, moved to FETCHED in the same statement (the lock skips one another call is taking). */
export async function fetchEarliestWaiting(trx: Transaction<PaymentDatabase>, deviceId: string, now: Date): Promise<OrderRow | undefined> {
  return FETCH_EARLIEST_WAITING.first(trx, { deviceId, now })
}
const FETCH_EARLIEST_WAITING = queryTemplate('payment-management.fetchEarliestWaiting', (trx: Db, v: { deviceId: string; now: Date }) =>
  trx
    .updateTable('orders')
    .set({ state: 'fetched', fetched_at: v.now, updated_at: v.now })
    .where('order_id', '=', (eb) =>
      eb
        .selectFrom('orders')
        .select('order_id')
        .where('device_id', '=', v.deviceId)
        .where('state', '=', 'submitted')
        .where('claimed_by', 'is', null)
        .where('expires_at', '>', v.now)
        .orderBy('seq')
        .limit(1)
        .forUpdate()
        .skipLocked(),
    )
    .where('state', '=', 'submitted')
    .returningAll(),
)

export async function updateOrder(db: Db, orderId: string, from: readonly OrderStateColumn[], changes: Updateable<OrdersTable>): Promise<OrderRow | undefined> {
  const columns = Object.keys(changes).filter((column) => changes[column as keyof typeof changes] !== undefined) as (keyof OrdersTable)[]
  const values: Record<string, unknown> = { orderId }
  from.forEach((state, i) => (values[`from${i}`] = state))
  for (const column of columns) values[`set_${column}`] = changes[column]
  return updateOrderTemplate(columns, from.length).first(db, values)
}

/** One template per set of changed columns and count of states moved from: the call sites' few shapes (bounded all the same). */
const updateOrderTemplates = new Map<string, QueryTemplate<PaymentDatabase, Record<string, unknown>, OrderRow>>()
function updateOrderTemplate(columns: readonly (keyof OrdersTable)[], fromCount: number) {
  const shape = `${[...columns].sort().join(',')}/${fromCount}`
  let template = updateOrderTemplates.get(shape)
  if (!template) {
    template = queryTemplate(`payment-management.updateOrder(${shape})`, (db: Db, v: Record<string, unknown>) =>
      db
        .updateTable('orders')
        .set({ ...(Object.fromEntries(columns.map((column) => [column, v[`set_${column}`]])) as Updateable<OrdersTable>), updated_at: sql`now()` })
        .where('order_id', '=', v.orderId as string)
        .where(
          'state',
          'in',
          Array.from({ length: fromCount }, (_, i) => v[`from${i}`] as OrderStateColumn),
        )
        .returningAll(),
    )
    if (updateOrderTemplates.size < 64) updateOrderTemplates.set(shape, template)
  }
  return template
}

export async function listOrders(db: Db, deviceId: string, beforeSeq: bigint | undefined, limit: number, scope: RentalScope = {}): Promise<OrderRow[]> {
  let query = db.selectFrom('orders').selectAll().where('device_id', '=', deviceId).orderBy('seq', 'desc').limit(limit)
  if (beforeSeq !== undefined) query = query.where('seq', '<', beforeSeq)
  if (scope.currentRentalOnly) query = query.where((eb) => eb.not(ofEarlierRental(eb)))
  return query.execute()
}

/** States in which an order can still be paid (and so cancelled). */
const UNPAID = ['submitted', 'fetched', 'awaiting_payment'] as const satisfies readonly OrderStateColumn[]

/** Unpaid orders of a device submitted before `submittedBefore`, locked, oldest first. */
export async function lockUnpaidOfDevice(trx: Transaction<PaymentDatabase>, deviceId: string, submittedBefore: Date): Promise<OrderRow[]> {
  return trx
    .selectFrom('orders')
    .selectAll()
    .where('device_id', '=', deviceId)
    .where('state', 'in', [...UNPAID])
    .where('submitted_at', '<', submittedBefore)
    .orderBy('seq')
    .forUpdate()
    .execute()
}

/** Unpaid orders past their deadline, earliest first, leaving out those deferred past `now`. */
export async function findExpired(db: Db, now: Date, limit: number): Promise<OrderRow[]> {
  return FIND_EXPIRED.rows(db, { now, limit })
}
const FIND_EXPIRED = queryTemplate('payment-management.findExpired', (db: Db, v: { now: Date; limit: number }) =>
  db
    .selectFrom('orders')
    .selectAll()
    .where('state', 'in', [...UNPAID])
    .where('expires_at', '<=', v.now)
    .where((eb) => eb.or([eb('expiry_recheck_at', 'is', null), eb('expiry_recheck_at', '<=', v.now)]))
    .orderBy('expires_at')
    .limit(v.limit),
)

/** Looks at an order for expiry again no sooner than `until`. */
export async function deferExpiry(db: Db, orderId: string, until: Date): Promise<void> {
  await db.updateTable('orders').set({ expiry_recheck_at: until }).where('order_id', '=', orderId).execute()
}

/**
 * The first claim of a pushed order wins, on any replica: one conditional update from SUBMITTED
 * (unclaimed, unexpired) to FETCHED, bound to the terminal. Undefined when the order was
 * claimed, fetched, ended or expired first.
 */
export async function claimOrder(db: Db, orderId: string, claim: { terminalId: string; gesture: string; now: Date }): Promise<OrderRow | undefined> {
  return db
    .updateTable('orders')
    .set({ state: 'fetched', fetched_at: claim.now, claimed_by: claim.terminalId, claim_gesture: claim.gesture, claimed_at: claim.now, updated_at: claim.now })
    .where('order_id', '=', orderId)
    .where('state', '=', 'submitted')
    .where('claimed_by', 'is', null)
    .where('expires_at', '>', claim.now)
    .returningAll()
    .executeTakeFirst()
}

/** Unpaid orders a terminal claimed before `claimedBefore`, locked, oldest first. */
export async function lockUnpaidClaimedBy(trx: Transaction<PaymentDatabase>, terminalId: string, claimedBefore: Date): Promise<OrderRow[]> {
  return trx
    .selectFrom('orders')
    .selectAll()
    .where('claimed_by', '=', terminalId)
    .where('claimed_at', '<', claimedBefore)
    .where('state', 'in', [...UNPAID])
    .orderBy('seq')
    .forUpdate()
    .execute()
}
