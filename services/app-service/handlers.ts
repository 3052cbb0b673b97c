// AppService handlers: validate the request, apply the rules, map rows to replies.
import type { Kysely } from 'kysely'
import type { AppServiceService, CatalogItem } from '../../gen/cloudpay/app/v1/app_service.ts'
import { decodePageToken, page, pageSize } from '../runtime/pagination.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as catalog from './catalog.ts'
import type { CatalogItemRow } from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

const toCatalogItem = (row: CatalogItemRow): CatalogItem => ({
  itemId: row.item_id,
  title: row.title,
  unitPrice: { currencyCode: row.currency_code, amountMinor: row.unit_price_minor },
  unitDiscount: { currencyCode: row.currency_code, amountMinor: row.unit_discount_minor },
})

export function createHandlers(deps: ServiceDeps): Handlers<typeof AppServiceService> {
  const db = deps.db as Kysely<AppDatabase>
  return {
    listCatalogItems: async (request) => {
      const size = pageSize(request.pageSize)
      const after = decodePageToken(request.pageToken, null)
      const rows = await catalog.listCatalogItems(db, after === undefined ? undefined : String(after), size + 1)
      const { items, nextPageToken } = page(rows, size, (row) => row.item_id, null)
      return { items: items.map(toCatalogItem), nextPageToken }
    },
    loginWithToken: notImplemented('LoginWithToken'),
    getAppAccount: notImplemented('GetAppAccount'),
    createOrder: notImplemented('CreateOrder'),
    getOrder: notImplemented('GetOrder'),
    fulfilOrder: notImplemented('FulfilOrder'),
    listInventory: notImplemented('ListInventory'),
  }
}
