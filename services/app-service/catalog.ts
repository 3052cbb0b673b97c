// Business rules for the catalog.
import type { Kysely } from 'kysely'
import * as store from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

export function listCatalogItems(db: Kysely<AppDatabase>, afterItemId: string | undefined, limit: number): Promise<store.CatalogItemRow[]> {
  return store.listCatalogItems(db, afterItemId, limit)
}
