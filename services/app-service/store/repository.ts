// SQL of the app_service schema. Functions take the database or a transaction.
import type { ExpressionBuilder, Kysely, Selectable, Transaction } from 'kysely'
import { sql } from 'kysely'
import { queryTemplate } from '../../runtime/query-template.ts'
import type { AppAccountsTable, AppDatabase, AppOrdersTable, AppSessionsTable, Archive, CatalogItemsTable, CollectionAccountsTable, InventoryTable } from './tables.ts'

type Db = Kysely<AppDatabase>
export type CatalogItemRow = Selectable<CatalogItemsTable>

/**
 * When the device's current rental began here (rental-boundary.ts): the end of its latest ended
 * assignment, as a scalar subquery; null before any ended.
 */
export const rentalBeganAt = (eb: ExpressionBuilder<any, any>, deviceId: string) =>
  (eb as ExpressionBuilder<AppDatabase, never>)
    .selectFrom('device_assignments')
    .select((e) => e.fn.max('ended_at').as('began_at'))
    .where('device_id', '=', deviceId)

/** Catalog items after `afterItemId` in id order; `limit` rows at most. */
export async function listCatalogItems(db: Db, afterItemId: string | undefined, limit: number): Promise<CatalogItemRow[]> {
  let query = db.selectFrom('catalog_items').selectAll().orderBy('item_id').limit(limit)
  if (afterItemId !== undefined) query = query.where('item_id', '>', afterItemId)
  return query.execute()
}

export type AppAccountRow = Selectable<AppAccountsTable>
export type AppSessionRow = Selectable<AppSessionsTable>

export async function insertAppAccount(db: Db, account: { appAccountId: string; displayName: string; archive: Archive }): Promise<AppAccountRow> {
  return db
    .insertInto('app_accounts')
    .values({ app_account_id: account.appAccountId, display_name: account.displayName, archive: JSON.stringify(account.archive) as unknown as Archive })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findAppAccount(db: Db, appAccountId: string): Promise<AppAccountRow | undefined> {
  return FIND_APP_ACCOUNT.first(db, { appAccountId })
}
const FIND_APP_ACCOUNT = queryTemplate('app-service.findAppAccount', (db: Db, v: { appAccountId: string }) =>
  db.selectFrom('app_accounts').selectAll().where('app_account_id', '=', v.appAccountId),
)

export async function deleteAppAccount(db: Db, appAccountId: string): Promise<void> {
  await db.deleteFrom('app_accounts').where('app_account_id', '=', appAccountId).execute()
}

/**
 * Records that a device's assignment is in use and locks its row until the transaction ends, so
 * ending the assignment waits for the statement's transaction (and it for an end under way): a
 * CTE `held` (its ended_at) for the insert of what is granted under the assignment.
 */
const underAssignment = (db: Db, deviceId: string, assignmentId: string) =>
  db.with('held', (qc) =>
    qc
      .insertInto('device_assignments')
      .values({ device_id: deviceId, assignment_id: assignmentId, ended_at: null })
      .onConflict((oc) => oc.columns(['device_id', 'assignment_id']).doUpdateSet({ device_id: (eb) => eb.ref('excluded.device_id') }))
      .returning('ended_at'),
  )

/** Opens a session under the device's assignment, held as underAssignment holds it; undefined when the assignment ended. */
export async function insertSessionUnderAssignment(trx: Transaction<AppDatabase>, session: SessionValues): Promise<AppSessionRow | undefined> {
  return INSERT_SESSION_UNDER_ASSIGNMENT.first(trx, session)
}
type SessionValues = { tokenHash: string; appAccountId: string; deviceId: string; assignmentId: string; expiresAt: Date }
const INSERT_SESSION_UNDER_ASSIGNMENT = queryTemplate('app-service.insertSessionUnderAssignment', (trx: Db, session: SessionValues) =>
  underAssignment(trx, session.deviceId, session.assignmentId)
    .insertInto('app_sessions')
    .columns(['token_hash', 'app_account_id', 'device_id', 'assignment_id', 'expires_at', 'ended_at'])
    .expression((eb) =>
      eb
        .selectFrom('held')
        .select([
          sql<string>`${session.tokenHash}::text`.as('token_hash'),
          sql<string>`${session.appAccountId}::text`.as('app_account_id'),
          sql<string>`${session.deviceId}::text`.as('device_id'),
          sql<string>`${session.assignmentId}::text`.as('assignment_id'),
          sql<Date>`${session.expiresAt}::timestamptz`.as('expires_at'),
          sql<null>`null::timestamptz`.as('ended_at'),
        ])
        .where('held.ended_at', 'is', null),
    )
    .returningAll(),
)

/** Marks a device's assignment ended (the first end's time is kept). */
export async function endDeviceAssignment(trx: Transaction<AppDatabase>, deviceId: string, assignmentId: string, now: Date): Promise<void> {
  await trx
    .insertInto('device_assignments')
    .values({ device_id: deviceId, assignment_id: assignmentId, ended_at: now })
    .onConflict((oc) => oc.columns(['device_id', 'assignment_id']).doUpdateSet({ ended_at: sql`coalesce(device_assignments.ended_at, excluded.ended_at)` }))
    .execute()
}

/** Ends the device's live sessions of these assignments; returns how many. */
export async function endSessions(db: Db, deviceId: string, assignmentIds: readonly string[], now: Date): Promise<number> {
  const result = await db
    .updateTable('app_sessions')
    .set({ ended_at: now })
    .where('device_id', '=', deviceId)
    .where('assignment_id', 'in', [...assignmentIds])
    .where('ended_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** A session and its app account, in one read. */
export async function findSessionWithAccount(db: Db, tokenHash: string): Promise<{ session: AppSessionRow; account: AppAccountRow | undefined } | undefined> {
  const row = await FIND_SESSION_WITH_ACCOUNT.first(db, { tokenHash })
  if (!row) return undefined
  const { account_id, account_display_name, account_archive, account_created_at, ...session } = row
  const account = account_id === null ? undefined : { app_account_id: account_id, display_name: account_display_name!, archive: account_archive!, created_at: account_created_at! }
  return { session, account }
}
const FIND_SESSION_WITH_ACCOUNT = queryTemplate('app-service.findSessionWithAccount', (db: Db, v: { tokenHash: string }) =>
  db
    .selectFrom('app_sessions')
    .leftJoin('app_accounts', 'app_accounts.app_account_id', 'app_sessions.app_account_id')
    .selectAll('app_sessions')
    .select([
      'app_accounts.app_account_id as account_id',
      'app_accounts.display_name as account_display_name',
      'app_accounts.archive as account_archive',
      'app_accounts.created_at as account_created_at',
    ])
    .where('app_sessions.token_hash', '=', v.tokenHash),
)

export type AppOrderRow = Selectable<AppOrdersTable>
export type CollectionAccountRow = Selectable<CollectionAccountsTable>
export type InventoryRow = Selectable<InventoryTable>

export async function findCatalogItem(db: Db, itemId: string): Promise<CatalogItemRow | undefined> {
  return FIND_CATALOG_ITEM.first(db, { itemId })
}
const FIND_CATALOG_ITEM = queryTemplate('app-service.findCatalogItem', (db: Db, v: { itemId: string }) =>
  db.selectFrom('catalog_items').selectAll().where('item_id', '=', v.itemId),
)

/**
 * Inserts an order under the device's assignment, held as underAssignment holds it; returned with
 * the merchant's collection accounts (the reply shows both); undefined when the assignment ended.
 */
export async function insertOrderUnderAssignment(
  trx: Transaction<AppDatabase>,
  order: NewAppOrder,
): Promise<{ order: AppOrderRow; collection: CollectionAccountRow[] } | undefined> {
  const inserted = await INSERT_ORDER_UNDER_ASSIGNMENT.first(trx, order)
  if (!inserted) return undefined
  const { collection, ...row } = inserted
  return { order: row as AppOrderRow, collection: collection ?? [] }
}
type NewAppOrder = Omit<AppOrderRow, 'created_at' | 'effective_at' | 'state' | 'payment_order_id' | 'platform_id' | 'serial_number'>
const INSERT_ORDER_UNDER_ASSIGNMENT = queryTemplate('app-service.insertOrderUnderAssignment', (trx: Db, order: NewAppOrder) =>
  underAssignment(trx, order.device_id, order.assignment_id)
    .insertInto('app_orders')
    .columns([
      'app_order_id',
      'app_account_id',
      'device_id',
      'assignment_id',
      'item_id',
      'quantity',
      'currency_code',
      'unit_price_minor',
      'discount_minor',
      'amount_due_minor',
      'description',
      'state',
    ])
    .expression((eb) =>
      eb
        .selectFrom('held')
        .select([
          sql<string>`${order.app_order_id}::text`.as('app_order_id'),
          sql<string>`${order.app_account_id}::text`.as('app_account_id'),
          sql<string>`${order.device_id}::text`.as('device_id'),
          sql<string>`${order.assignment_id}::text`.as('assignment_id'),
          sql<string>`${order.item_id}::text`.as('item_id'),
          sql<number>`${order.quantity}::integer`.as('quantity'),
          sql<string>`${order.currency_code}::text`.as('currency_code'),
          sql<bigint>`${order.unit_price_minor}::bigint`.as('unit_price_minor'),
          sql<bigint>`${order.discount_minor}::bigint`.as('discount_minor'),
          sql<bigint>`${order.amount_due_minor}::bigint`.as('amount_due_minor'),
          sql<string>`${order.description}::text`.as('description'),
          sql<'pending'>`'pending'`.as('state'),
        ])
        .where('held.ended_at', 'is', null),
    )
    .returningAll()
    .returning(collectionColumn),
)

export async function findOrder(db: Db, appOrderId: string): Promise<AppOrderRow | undefined> {
  return db.selectFrom('app_orders').selectAll().where('app_order_id', '=', appOrderId).executeTakeFirst()
}

/** The merchant's collection accounts as one JSON column (what an order's reply shows beside it). */
const collectionColumn = (eb: ExpressionBuilder<AppDatabase, 'app_orders'>) =>
  eb
    .selectFrom('collection_accounts')
    .select(
      sql<
        CollectionAccountRow[]
      >`coalesce(jsonb_agg(jsonb_build_object('platform_id', platform_id, 'merchant_id', merchant_id, 'collection_account', collection_account) order by platform_id), '[]'::jsonb)`.as(
        'accounts',
      ),
    )
    .as('collection')

/** An order and the merchant's collection accounts (what a reply shows), in one statement. */
export async function findOrderWithCollection(
  db: Db,
  appOrderId: string,
): Promise<{ order: AppOrderRow; collection: CollectionAccountRow[]; assignmentEnded: boolean } | undefined> {
  const row = await FIND_ORDER_WITH_COLLECTION.first(db, { appOrderId })
  if (!row) return undefined
  const { collection, assignment_ended, ...order } = row
  return { order, collection: collection ?? [], assignmentEnded: Boolean(assignment_ended) }
}
const FIND_ORDER_WITH_COLLECTION = queryTemplate('app-service.findOrderWithCollection', (db: Db, v: { appOrderId: string }) =>
  db
    .selectFrom('app_orders')
    .selectAll('app_orders')
    // Placed under a rental of the device that has ended since (device_assignments' tombstone).
    .select((eb) =>
      eb
        .exists(
          eb
            .selectFrom('device_assignments')
            .select(sql<number>`1`.as('one'))
            .whereRef('device_assignments.device_id', '=', 'app_orders.device_id')
            .whereRef('device_assignments.assignment_id', '=', 'app_orders.assignment_id')
            .where('device_assignments.ended_at', 'is not', null),
        )
        .as('assignment_ended'),
    )
    .select(collectionColumn)
    .where('app_order_id', '=', v.appOrderId),
)

/**
 * Makes a pending order whose amount due is the one paid effective and delivers its items to the
 * account's inventory, in one statement (the inventory insert reads the UPDATE's row, so it
 * happens exactly when the order turned effective); returned with the merchant's collection
 * accounts; undefined when the order was not pending at that amount.
 */
export async function markOrderEffectiveDelivering(
  db: Db,
  appOrderId: string,
  payment: { paymentOrderId: string; platformId: string; serialNumber: string; paid: { currencyCode: string; amountMinor: bigint } },
): Promise<{ order: AppOrderRow; collection: CollectionAccountRow[] } | undefined> {
  const { paymentOrderId, platformId, serialNumber } = payment
  const row = await MARK_ORDER_EFFECTIVE_DELIVERING.first(db, {
    appOrderId,
    paymentOrderId,
    platformId,
    serialNumber,
    currencyCode: payment.paid.currencyCode,
    amountMinor: payment.paid.amountMinor,
  })
  if (!row) return undefined
  const { collection, ...order } = row
  return { order: order as AppOrderRow, collection: collection ?? [] }
}
type EffectiveValues = { appOrderId: string; paymentOrderId: string; platformId: string; serialNumber: string; currencyCode: string; amountMinor: bigint }
const MARK_ORDER_EFFECTIVE_DELIVERING = queryTemplate('app-service.markOrderEffectiveDelivering', (db: Db, v: EffectiveValues) =>
  db
    .with('effective', (qc) =>
      qc
        .updateTable('app_orders')
        .set({ state: 'effective', effective_at: sql`now()`, payment_order_id: v.paymentOrderId, platform_id: v.platformId, serial_number: v.serialNumber })
        .where('app_order_id', '=', v.appOrderId)
        .where('state', '=', 'pending')
        .where('currency_code', '=', v.currencyCode)
        .where('amount_due_minor', '=', v.amountMinor)
        .returningAll()
        .returning(collectionColumn),
    )
    .with('delivered', (qc) =>
      qc
        .insertInto('inventory')
        .columns(['app_account_id', 'item_id', 'quantity'])
        .expression((eb) => eb.selectFrom('effective').select(['app_account_id', 'item_id', sql<bigint>`quantity::bigint`.as('quantity')]))
        .onConflict((oc) => oc.columns(['app_account_id', 'item_id']).doUpdateSet({ quantity: sql`inventory.quantity + excluded.quantity` })),
    )
    .selectFrom('effective')
    .selectAll(),
)

/** Rejects the device's pending orders placed under these assignments; returns how many. */
export async function rejectPendingOrders(db: Db, deviceId: string, assignmentIds: readonly string[]): Promise<number> {
  const result = await db
    .updateTable('app_orders')
    .set({ state: 'rejected' })
    .where('device_id', '=', deviceId)
    .where('assignment_id', 'in', [...assignmentIds])
    .where('state', '=', 'pending')
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

export async function markOrderRejected(db: Db, appOrderId: string): Promise<void> {
  await db.updateTable('app_orders').set({ state: 'rejected' }).where('app_order_id', '=', appOrderId).where('state', '=', 'pending').execute()
}

export async function listInventory(db: Db, appAccountId: string, afterItemId: string | undefined, limit: number): Promise<InventoryRow[]> {
  let query = db.selectFrom('inventory').selectAll().where('app_account_id', '=', appAccountId).orderBy('item_id').limit(limit)
  if (afterItemId !== undefined) query = query.where('item_id', '>', afterItemId)
  return query.execute()
}

// Retention (runtime/retention.ts): one bounded statement each, finished rows only.

/** Deletes up to `limit` sessions that expired before `before` (ended ones included: they expire too). */
export async function deleteSessionsExpiredBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('app_sessions')
    .where('token_hash', 'in', (eb) => eb.selectFrom('app_sessions').select('token_hash').where('expires_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Deletes up to `limit` ended-assignment tombstones that ended before `before`; a live assignment's row stays. */
export async function deleteAssignmentsEndedBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('device_assignments')
    .where((eb) =>
      eb(
        eb.refTuple('device_id', 'assignment_id'),
        'in',
        eb
          .selectFrom('device_assignments')
          .select(['device_id', 'assignment_id'])
          .where('ended_at', 'is not', null)
          .where('ended_at', '<', before)
          .limit(limit)
          .forUpdate()
          .skipLocked()
          .$asTuple('device_id', 'assignment_id'),
      ),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
