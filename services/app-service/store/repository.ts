// SQL of the app_service schema. Functions take the database or a transaction.
import type { Kysely, Selectable } from 'kysely'
import type { AppDatabase, CatalogItemsTable } from './tables.ts'

type Db = Kysely<AppDatabase>
export type CatalogItemRow = Selectable<CatalogItemsTable>

/** Catalog items after `afterItemId` in id order; `limit` rows at most. */
export async function listCatalogItems(db: Db, afterItemId: string | undefined, limit: number): Promise<CatalogItemRow[]> {
  let query = db.selectFrom('catalog_items').selectAll().orderBy('item_id').limit(limit)
  if (afterItemId !== undefined) query = query.where('item_id', '>', afterItemId)
  return query.execute()
}
