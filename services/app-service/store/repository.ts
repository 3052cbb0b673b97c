// SQL of the app_service schema. Functions take the database or a transaction.
import type { Kysely, Selectable } from 'kysely'
import type { AppAccountsTable, AppDatabase, AppSessionsTable, Archive, CatalogItemsTable } from './tables.ts'

type Db = Kysely<AppDatabase>
export type CatalogItemRow = Selectable<CatalogItemsTable>

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
  return db.selectFrom('app_accounts').selectAll().where('app_account_id', '=', appAccountId).executeTakeFirst()
}

export async function deleteAppAccount(db: Db, appAccountId: string): Promise<void> {
  await db.deleteFrom('app_accounts').where('app_account_id', '=', appAccountId).execute()
}

export async function insertSession(db: Db, session: { tokenHash: string; appAccountId: string; deviceId: string; expiresAt: Date }): Promise<AppSessionRow> {
  return db
    .insertInto('app_sessions')
    .values({ token_hash: session.tokenHash, app_account_id: session.appAccountId, device_id: session.deviceId, expires_at: session.expiresAt })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findSession(db: Db, tokenHash: string): Promise<AppSessionRow | undefined> {
  return db.selectFrom('app_sessions').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
}
