// AppService handlers: validate the request, apply the rules, map rows to replies.
import type { Kysely } from 'kysely'
import { type AppAccount, type AppServiceService, type CatalogItem, LoginWithTokenRequest, LoginWithTokenResponse } from '../../gen/cloudpay/app/v1/app_service.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { unaryCall } from '../runtime/client.ts'
import { derivedRequestId, idempotent, replayOf } from '../runtime/idempotency.ts'
import { decodePageToken, page, pageSize } from '../runtime/pagination.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { validate } from '../runtime/validation.ts'
import * as accounts from './accounts.ts'
import * as catalog from './catalog.ts'
import type { AppAccountRow, CatalogItemRow } from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

const toCatalogItem = (row: CatalogItemRow): CatalogItem => ({
  itemId: row.item_id,
  title: row.title,
  unitPrice: { currencyCode: row.currency_code, amountMinor: row.unit_price_minor },
  unitDiscount: { currencyCode: row.currency_code, amountMinor: row.unit_discount_minor },
})

const toAppAccount = (row: AppAccountRow): AppAccount => ({ appAccountId: row.app_account_id, displayName: row.display_name, createTime: row.created_at })
const SESSION_TOKEN = /^[A-Za-z0-9_-]{43}$/

export function createHandlers(deps: ServiceDeps): Handlers<typeof AppServiceService> {
  const db = deps.db as Kysely<AppDatabase>
  const accountManagement = () => deps.peers.get('account-management')
  return {
    loginWithToken: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').check(/^[A-Za-z0-9_-]{43}$/.test(request.loginToken), 'login_token', 'must be a token returned by RedeemLogin'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      const call = { caller: ctx.caller, method: ctx.method, requestId: request.requestId, request, requestCodec: LoginWithTokenRequest, responseCodec: LoginWithTokenResponse }
      const replay = await replayOf(db, call)
      if (replay) return replay
      // Peer calls stay outside transactions (the embedded database runs one at a time). Their
      // request ids derive from ours, so a retry of this call replays AccountManagement's answers.
      const validated = await callPeer(
        'account-management',
        unaryCall(accountManagement(), 'validateLoginToken', { requestId: derivedRequestId(request.requestId, 'validate'), loginToken: request.loginToken, deviceId: request.deviceId }, { signal: ctx.signal }),
      )
      let appAccountId = validated.appAccountId
      let created = false
      if (!appAccountId) {
        const guest = await accounts.createGuestAccount(db)
        const bound = await callPeer(
          'account-management',
          unaryCall(accountManagement(), 'bindAppAccount', { requestId: derivedRequestId(request.requestId, 'bind'), accountId: validated.accountId, appAccountId: guest.app_account_id }, { signal: ctx.signal }),
        )
        appAccountId = bound.binding!.appAccountId
        created = appAccountId === guest.app_account_id
        if (!created) await accounts.discardAppAccount(db, guest.app_account_id) // a concurrent first login (or our own earlier try) won
      }
      return idempotent(db, call, async (trx) => {
        const account = await accounts.getAppAccount(trx, appAccountId)
        const session = await accounts.openSession(trx, appAccountId, request.deviceId, deps.config.login.sessionTtlMs)
        return { appAccount: toAppAccount(account), created, sessionToken: session.token, expireTime: session.expiresAt }
      })
    },

    getAppAccount: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').check(SESSION_TOKEN.test(request.sessionToken), 'session_token', 'must be a token returned by LoginWithToken'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return { appAccount: toAppAccount(await accounts.accountOfSession(db, request.sessionToken, request.deviceId)) }
    },

    listCatalogItems: async (request) => {
      const size = pageSize(request.pageSize)
      const after = decodePageToken(request.pageToken, null)
      const rows = await catalog.listCatalogItems(db, after === undefined ? undefined : String(after), size + 1)
      const { items, nextPageToken } = page(rows, size, (row) => row.item_id, null)
      return { items: items.map(toCatalogItem), nextPageToken }
    },
    createOrder: notImplemented('CreateOrder'),
    getOrder: notImplemented('GetOrder'),
    fulfilOrder: notImplemented('FulfilOrder'),
    listInventory: notImplemented('ListInventory'),
  }
}
