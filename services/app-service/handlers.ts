// AppService handlers: validate the request, apply the rules, map rows to replies.
import {
  type AppAccount,
  type AppOrder,
  AppOrderState,
  type AppServiceService,
  type CatalogItem,
  CreateOrderRequest,
  CreateOrderResponse,
  EndDeviceSessionsRequest,
  EndDeviceSessionsResponse,
  FulfilOrderRequest,
  FulfilOrderResponse,
  LoginWithTokenRequest,
  LoginWithTokenResponse,
} from '../../gen/cloudpay/app/v1/app_service.ts'
import { PermissionDeniedError, quote } from '../runtime/errors.ts'
import * as orders from './orders.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { formatIdentity } from '../runtime/identity.ts'
import { callOf, derivedRequestId, idempotent, idempotentFlow } from '../runtime/idempotency.ts'
import { registerRentalBoundary } from '../runtime/rental-boundary.ts'
import { rentalBeganAt } from './store/repository.ts'
import { KEY_CURSOR, listPage } from '../runtime/pagination.ts'
import type { Handlers } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { bearerToken, validate } from '../runtime/validation.ts'
import * as accounts from './accounts.ts'
import * as catalog from './catalog.ts'
import { bindAppAccount, validateLoginToken } from './peers.ts'
import type { AppAccountRow, AppOrderRow, CatalogItemRow, CollectionAccountRow } from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

const toCatalogItem = (row: CatalogItemRow): CatalogItem => ({
  itemId: row.item_id,
  title: row.title,
  unitPrice: { currencyCode: row.currency_code, amountMinor: row.unit_price_minor },
  unitDiscount: { currencyCode: row.currency_code, amountMinor: row.unit_discount_minor },
})

const toAppAccount = (row: AppAccountRow): AppAccount => ({ appAccountId: row.app_account_id, displayName: row.display_name, createTime: row.created_at })
const SESSION_TOKEN = bearerToken('LoginWithToken')
const LOGIN_TOKEN = bearerToken('RedeemLogin')
const QUANTITY = { min: 1, max: 100 }
const ORDER_STATES = {
  pending: AppOrderState.APP_ORDER_STATE_PENDING,
  effective: AppOrderState.APP_ORDER_STATE_EFFECTIVE,
  rejected: AppOrderState.APP_ORDER_STATE_REJECTED,
} as const
const toOrder = ({ order: row, collection }: { order: AppOrderRow; collection: CollectionAccountRow[] }): AppOrder => ({
  appOrderId: row.app_order_id,
  appAccountId: row.app_account_id,
  itemId: row.item_id,
  quantity: row.quantity,
  unitPrice: { currencyCode: row.currency_code, amountMinor: row.unit_price_minor },
  discount: { currencyCode: row.currency_code, amountMinor: row.discount_minor },
  amountDue: { currencyCode: row.currency_code, amountMinor: row.amount_due_minor },
  merchantId: orders.MERCHANT_ID,
  collectionAccounts: Object.fromEntries(collection.map((c) => [c.platform_id, c.collection_account])),
  description: row.description,
  state: ORDER_STATES[row.state],
  createTime: row.created_at,
  effectiveTime: row.effective_at ?? undefined,
  deviceId: row.device_id,
})

export function createHandlers(deps: ServiceDeps<AppDatabase>): Handlers<typeof AppServiceService> {
  const db = deps.db
  // An instance's stored answers are its device's current rental's only.
  registerRentalBoundary(db, (caller, eb) => (caller.role === 'instance' ? rentalBeganAt(eb, caller.id) : undefined))
  const now = () => deps.clock.now()
  return {
    loginWithToken: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.loginToken, 'login_token', LOGIN_TOKEN),
      )
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return idempotentFlow(db, callOf(ctx, request, LoginWithTokenRequest, LoginWithTokenResponse), async (commit) => {
        // Peer calls stay outside transactions (the embedded database runs one at a time). Their
        // request ids derive from ours, so a retry of this call replays AccountManagement's answers.
        const validated = await validateLoginToken(
          deps.peers,
          { requestId: derivedRequestId(formatIdentity(ctx.caller), request.requestId, 'validate'), loginToken: request.loginToken, deviceId: request.deviceId },
          ctx.signal,
        )
        let appAccountId = validated.appAccountId
        let created = false
        if (!appAccountId) {
          const guest = await accounts.createGuestAccount(db)
          const bound = await bindAppAccount(
            deps.peers,
            { requestId: derivedRequestId(formatIdentity(ctx.caller), request.requestId, 'bind'), accountId: validated.accountId, appAccountId: guest.app_account_id },
            ctx.signal,
          )
          appAccountId = bound.binding!.appAccountId
          created = appAccountId === guest.app_account_id
          if (!created) await accounts.discardAppAccount(db, guest.app_account_id) // a concurrent first login (or our own earlier try) won
        }
        return commit(async (trx) => {
          const account = await accounts.getAppAccount(trx, appAccountId)
          const session = await accounts.openSession(trx, appAccountId, request.deviceId, validated.assignmentId, deps.config.login.sessionTtlMs, now())
          return { appAccount: toAppAccount(account), created, sessionToken: session.token, expireTime: session.expiresAt }
        })
        // AccountManagement replays its answers to the derived request ids; a spare guest account is discarded.
      }, { repeatablePreparation: true })
    },

    getAppAccount: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').format(request.sessionToken, 'session_token', SESSION_TOKEN))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return { appAccount: toAppAccount(await accounts.accountOfSession(db, request.sessionToken, request.deviceId, now())) }
    },

    listCatalogItems: async (request, ctx) => {
      validate((v) => v.page(request))
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: null,
        cursor: KEY_CURSOR,
        fetch: (after, limit) => catalog.listCatalogItems(db, after, limit),
        cursorOf: (row) => row.item_id,
      })
      return { items: items.map(toCatalogItem), nextPageToken }
    },
    createOrder: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.sessionToken, 'session_token', SESSION_TOKEN)
          .id(request.itemId, 'item_id')
          .integer(request.quantity, 'quantity', QUANTITY),
      )
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      // Everything in the one transaction that claims the request id: one commit, and a retry
      // gets its first answer even after the session ended.
      return idempotent(db, callOf(ctx, request, CreateOrderRequest, CreateOrderResponse), async (trx) => {
        const { session, account } = await accounts.sessionOf(trx, request.sessionToken, request.deviceId, now())
        const input = { appAccountId: account.app_account_id, deviceId: request.deviceId, assignmentId: session.assignment_id, itemId: request.itemId, quantity: request.quantity }
        const created = await orders.createOrder(trx, input)
        return { order: toOrder(created) }
      })
    },

    getOrder: async (request, ctx) => {
      validate((v) => v.id(request.appOrderId, 'app_order_id'))
      const found = await orders.getOrderWithCollection(db, request.appOrderId, { currentRentalOnly: ctx.caller.role === 'instance' })
      if (ctx.caller.role === 'instance' && found.order.device_id !== ctx.caller.id) {
        throw new PermissionDeniedError('NOT_OWN_ORDER', `order ${quote(request.appOrderId)} was not placed from device ${ctx.caller.id}`)
      }
      return { order: toOrder(found) }
    },

    fulfilOrder: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.appOrderId, 'app_order_id')
          .money(request.paidAmount, 'paid_amount', { positive: true })
          .id(request.paymentOrderId, 'payment_order_id')
          .id(request.platformId, 'platform_id')
          .id(request.serialNumber, 'serial_number')
          .id(request.deviceId, 'device_id'),
      )
      ctx.span.setAttribute('cloudpay.order_id', request.paymentOrderId)
      const call = callOf(ctx, request, FulfilOrderRequest, FulfilOrderResponse)
      const payment = { paymentOrderId: request.paymentOrderId, platformId: request.platformId, serialNumber: request.serialNumber, paid: request.paidAmount! }
      // Checked and applied in the one transaction that stores the answer; only a refused amount
      // leaves a mark outside it (the order is rejected).
      // No preparation, so no read first: the claim finds an earlier answer.
      const reply = await idempotent(db, call, async (trx) => {
        return { order: toOrder(await orders.fulfil(trx, request.appOrderId, payment)) }
      }).catch(async (error: unknown) => {
        await orders.rejectMismatched(db, request.appOrderId, error)
        throw error
      })
      // PaymentManagement tells the instance (ORDER_EFFECTIVE) once it recorded the order effective.
      return reply
    },

    listInventory: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').format(request.sessionToken, 'session_token', SESSION_TOKEN).page(request))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      const account = await accounts.accountOfSession(db, request.sessionToken, request.deviceId, now())
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { account: account.app_account_id },
        cursor: KEY_CURSOR,
        fetch: (after, limit) => orders.inventory(db, account.app_account_id, after, limit),
        cursorOf: (row) => row.item_id,
      })
      return { items: items.map((row) => ({ itemId: row.item_id, quantity: row.quantity })), nextPageToken }
    },

    endDeviceSessions: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').id(request.assignmentId, 'assignment_id').timestamp(request.endTime, 'end_time'))
      return idempotent(db, callOf(ctx, request, EndDeviceSessionsRequest, EndDeviceSessionsResponse), async (trx) => ({
        // The rental boundary is the release itself (end_time), not this hand-off's arrival.
        endedSessions: await accounts.endAssignment(trx, request.deviceId, request.assignmentId, request.endTime ?? now(), now()),
        rejectedOrders: await orders.rejectUnpaidOfAssignment(trx, request.deviceId, accounts.endedWith(request.assignmentId)),
      }))
    },
  }
}
