// PaymentManagementService handlers: validate the request, apply the rules, map rows to replies.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { AppOrderState } from '../../gen/cloudpay/app/v1/app_service.ts'
import {
  CancelDeviceOrdersRequest,
  CancelDeviceOrdersResponse,
  CancelOrderRequest,
  CancelOrderResponse,
  FetchOrderRequest,
  FetchOrderResponse,
  Gesture,
  type Order,
  OrderState,
  type PaymentManagementServiceService,
  PaymentResult,
  PrepayOrderRequest,
  PrepayOrderResponse,
  ReportPaymentResultRequest,
  ReportPaymentResultResponse,
  SubmitOrderRequest,
  SubmitOrderResponse,
} from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { assertMayActForDevice } from '../runtime/device-access.ts'
import { FailedPreconditionError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { formatIdentity } from '../runtime/identity.ts'
import { callOf, derivedRequestId, idempotent, replayOf } from '../runtime/idempotency.ts'
import { channelCheckVia } from '../runtime/mesh-calls.ts'
import { startOutbox } from '../runtime/outbox.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import { notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps, ServiceParts } from '../runtime/service-host.ts'
import { restoreContext, tagged, traceParentOf } from '../runtime/trace-context.ts'
import { type Format, UUID_PATTERN, validate } from '../runtime/validation.ts'
import { handOffs } from './hand-offs.ts'
import * as orders from './orders.ts'
import type { OrderRow } from './store/repository.ts'
import type { PaymentDatabase } from './store/tables.ts'

const STATES: Record<orders.OrderState, OrderState> = {
  submitted: OrderState.ORDER_STATE_SUBMITTED,
  fetched: OrderState.ORDER_STATE_FETCHED,
  awaiting_payment: OrderState.ORDER_STATE_AWAITING_PAYMENT,
  paid: OrderState.ORDER_STATE_PAID,
  effective: OrderState.ORDER_STATE_EFFECTIVE,
  failed: OrderState.ORDER_STATE_FAILED,
  cancelled: OrderState.ORDER_STATE_CANCELLED,
  expired: OrderState.ORDER_STATE_EXPIRED,
  refunded: OrderState.ORDER_STATE_REFUNDED,
}

const toOrder = (row: OrderRow): Order => ({
  orderId: row.order_id,
  deviceId: row.device_id,
  appOrderId: row.app_order_id,
  state: STATES[row.state],
  amount: { currencyCode: row.currency_code, amountMinor: row.amount_minor },
  description: row.description,
  merchantId: row.merchant_id,
  platformId: row.platform_id ?? '',
  serialNumber: row.serial_number ?? '',
  submitTime: row.submitted_at,
  fetchTime: row.fetched_at ?? undefined,
  updateTime: row.updated_at,
  expireTime: row.expires_at,
  endReason: row.end_reason,
  traceParent: traceParentOf(restoreContext(row.trace_context)),
  claimedByTerminalId: '',
  claimGesture: Gesture.GESTURE_UNSPECIFIED,
  claimTime: undefined,
})

const ORDER_ID: Format = { pattern: UUID_PATTERN, description: 'must be an order id returned by SubmitOrder' }
/** Platforms sign with their service key: base64url of an ECDSA or RSA (up to 4096-bit) signature. */
const SIGNATURE: Format = { pattern: /^[A-Za-z0-9_-]{16,700}$/, description: 'must be the base64url signature of the payment result' }
const BINDING_ID: Format = { pattern: UUID_PATTERN, description: 'must be a binding id returned by BindPaymentAccount, or empty for the default' }

export function createHandlers(deps: ServiceDeps): ServiceParts<typeof PaymentManagementServiceService> {
  const db = deps.db as Kysely<PaymentDatabase>
  const settings = deps.config.payment
  const outbox = startOutbox({ db, tracer: deps.tracer, log: deps.log, retryBaseMs: settings.retryBaseMs, retryMaxMs: settings.retryMaxMs, handlers: handOffs(db, deps.peers) })
  const sweeper = setInterval(
    () =>
      orders
        .expireDue(db)
        .then((n) => n > 0 && outbox.kick())
        .catch((error: unknown) => deps.log.warn({ err: error }, 'order expiry failed')),
    Math.min(Math.max(settings.orderTtlMs / 4, 250), 5_000),
  )
  sweeper.unref()
  const mayActFor = (ctx: { caller: Parameters<typeof assertMayActForDevice>[0]; signal: AbortSignal }, deviceId: string) =>
    assertMayActForDevice(ctx.caller, deviceId, channelCheckVia(deps.peers, ctx.signal))

  const handlers: ServiceParts<typeof PaymentManagementServiceService>['handlers'] = {
    submitOrder: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').id(request.appOrderId, 'app_order_id'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      const call = callOf(ctx, request, SubmitOrderRequest, SubmitOrderResponse)
      const replay = await replayOf(db, call)
      if (replay) return replay
      // The order's id exists from the start, so every span of the submission carries it.
      const orderId = randomUUID()
      return tagged({ orderId, deviceId: request.deviceId }, async () => {
        // The amount is the application's own record of the order; the instance sends none.
        const { order: appOrder } = await callPeer('app-service', unaryCall(deps.peers.get('app-service'), 'getOrder', { appOrderId: request.appOrderId }, { signal: ctx.signal }))
        if (!appOrder || appOrder.deviceId !== request.deviceId)
          throw new PermissionDeniedError('NOT_OWN_ORDER', `app_order_id ${quote(request.appOrderId)} was not placed from device ${quote(request.deviceId)}`)
        if (appOrder.state !== AppOrderState.APP_ORDER_STATE_PENDING)
          throw new FailedPreconditionError('APP_ORDER_NOT_PENDING', `app order ${quote(request.appOrderId)} is not waiting for payment`)
        const input = {
          orderId,
          deviceId: request.deviceId,
          appOrderId: appOrder.appOrderId,
          amountMinor: appOrder.amountDue!.amountMinor,
          currencyCode: appOrder.amountDue!.currencyCode,
          description: appOrder.description,
          merchantId: appOrder.merchantId,
          collectionAccounts: appOrder.collectionAccounts,
        }
        return idempotent(db, call, async (trx) => ({ order: toOrder(await orders.submit(trx, input, settings.orderTtlMs)) }))
      })
    },

    fetchOrder: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id'))
      await mayActFor(ctx, request.deviceId)
      return idempotent(db, callOf(ctx, request, FetchOrderRequest, FetchOrderResponse), async (trx) => {
        const fetched = await orders.fetchNext(trx, request.deviceId)
        ctx.span.setAttribute('cloudpay.order_id', fetched.order_id)
        return { order: toOrder(fetched) }
      })
    },

    getOrder: async (request, ctx) => {
      validate((v) => v.format(request.orderId, 'order_id', ORDER_ID))
      const order = await orders.get(db, request.orderId)
      await mayActFor(ctx, order.device_id)
      return { order: toOrder(order) }
    },

    listOrders: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').page(request))
      await mayActFor(ctx, request.deviceId)
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { deviceId: request.deviceId },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => orders.list(db, request.deviceId, after, limit),
        cursorOf: (row) => row.seq,
      })
      return { orders: items.map(toOrder), nextPageToken }
    },

    prepayOrder: async (request, ctx) => {
      // Every field before any peer call: a value AccountManagement cannot take must not reach it.
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.orderId, 'order_id', ORDER_ID)
          .format(request.bindingId, 'binding_id', BINDING_ID, { optional: true }),
      )
      await mayActFor(ctx, request.deviceId)
      const call = callOf(ctx, request, PrepayOrderRequest, PrepayOrderResponse)
      const replay = await replayOf(db, call)
      if (replay) return replay
      const order = await orders.get(db, request.orderId)
      if (order.device_id !== request.deviceId) throw new PermissionDeniedError('NOT_OWN_ORDER', `order ${quote(request.orderId)} does not belong to device ${quote(request.deviceId)}`)
      return tagged({ orderId: order.order_id, deviceId: order.device_id }, async () => {
        // Peer calls outside any transaction; the state is re-checked by the transition after.
        const account = await callPeer(
          'account-management',
          unaryCall(deps.peers.get('account-management'), 'resolvePaymentAccount', { deviceId: request.deviceId, bindingId: request.bindingId }, { signal: ctx.signal }),
        )
        const collectionAccount = orders.assertPrepayable(order, account.platformId)
        const { transaction, resultKey } = await callPeer(
          'payment-platform',
          unaryCall(
            deps.peers.get('payment-platform'),
            'createPrepay',
            {
              requestId: derivedRequestId(formatIdentity(ctx.caller), order.order_id, 'prepay', account.bindingId),
              platformId: account.platformId,
              payerAccount: account.payerAccount,
              amount: { currencyCode: order.currency_code, amountMinor: order.amount_minor },
              collectionAccount,
              merchantId: order.merchant_id,
              merchantOrderId: order.order_id,
              description: [...order.description].slice(0, 200).join(''), // characters, not halves of one
              // Only the terminal that asked (and may act for the device) can pay this prepay.
              terminalId: ctx.caller.id,
            },
            { signal: ctx.signal },
          ),
        )
        const prepay = { platformId: account.platformId, serialNumber: transaction!.serialNumber, resultKeyId: resultKey!.keyId, resultPublicKey: resultKey!.publicKey }
        return idempotent(db, call, async (trx) => ({
          order: toOrder(await orders.recordPrepay(trx, order.order_id, prepay)),
          platformId: prepay.platformId,
          serialNumber: prepay.serialNumber,
        }))
      })
    },

    reportPaymentResult: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .id(request.serialNumber, 'serial_number')
          .oneOf(request.result, 'result', [PaymentResult.PAYMENT_RESULT_SUCCEEDED, PaymentResult.PAYMENT_RESULT_FAILED], 'must be SUCCEEDED or FAILED')
          .money(request.amount, 'amount', { positive: true })
          .timestamp(request.completeTime, 'complete_time', { required: true })
          .format(request.signature, 'signature', SIGNATURE)
          .opaqueId(request.keyId, 'key_id'),
      )
      const paidOrder = await orders.getBySerial(db, request.platformId, request.serialNumber)
      const fields = {
        platformId: request.platformId,
        serialNumber: request.serialNumber,
        result: PaymentResult[request.result].replace('PAYMENT_RESULT_', ''),
        currencyCode: request.amount!.currencyCode,
        amountMinor: request.amount!.amountMinor,
        completeTime: request.completeTime!.toISOString(),
      }
      orders.assertResultSignedByPrepayKey(paidOrder, request.keyId, fields, request.signature)
      const reply = await tagged({ orderId: paidOrder.order_id, deviceId: paidOrder.device_id, platformId: request.platformId }, () =>
        idempotent(db, callOf(ctx, request, ReportPaymentResultRequest, ReportPaymentResultResponse), async (trx) => {
          if (request.result !== PaymentResult.PAYMENT_RESULT_SUCCEEDED) return { order: toOrder(await orders.getBySerial(trx, request.platformId, request.serialNumber)) }
          return { order: toOrder(await orders.applyPayment(trx, request.platformId, request.serialNumber, request.amount!)) }
        }),
      )
      outbox.kick()
      return reply
    },

    authorizeTerminal: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').id(request.serialNumber, 'serial_number').id(request.terminalId, 'terminal_id'))
      const order = await orders.findBySerial(db, request.platformId, request.serialNumber)
      if (!order) return { allowed: false, reason: 'no order is paid with this transaction' }
      return tagged({ orderId: order.order_id, deviceId: order.device_id, platformId: request.platformId }, async () => {
        try {
          await mayActFor({ caller: { role: 'terminal', id: request.terminalId }, signal: ctx.signal }, order.device_id)
          return { allowed: true, reason: '' }
        } catch (error) {
          if (error instanceof PermissionDeniedError) return { allowed: false, reason: error.message }
          throw error
        }
      })
    },

    cancelOrder: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.orderId, 'order_id', ORDER_ID)
          .text(request.reason, 'reason', { max: 200, multiline: true }),
      )
      await mayActFor(ctx, request.deviceId)
      const order = await orders.get(db, request.orderId)
      if (order.device_id !== request.deviceId) throw new PermissionDeniedError('NOT_OWN_ORDER', `order ${quote(request.orderId)} does not belong to device ${quote(request.deviceId)}`)
      const reply = await tagged({ orderId: order.order_id, deviceId: order.device_id }, () =>
        idempotent(db, callOf(ctx, request, CancelOrderRequest, CancelOrderResponse), async (trx) => ({
          order: toOrder(await orders.cancel(trx, request.orderId, request.reason || `cancelled by ${ctx.caller.role}`)),
        })),
      )
      outbox.kick()
      return reply
    },

    cancelDeviceOrders: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .check(request.submittedBefore !== undefined, 'submitted_before', 'is required'),
      )
      const reply = await tagged({ deviceId: request.deviceId }, () =>
        idempotent(db, callOf(ctx, request, CancelDeviceOrdersRequest, CancelDeviceOrdersResponse), async (trx) => ({
          orderIds: (await orders.cancelDeviceOrders(trx, request.deviceId, request.submittedBefore!)).map((order) => order.order_id),
        })),
      )
      outbox.kick()
      return reply
    },
    claimOrder: notImplemented('ClaimOrder'),
    endTerminalClaims: notImplemented('EndTerminalClaims'),
  }
  return {
    handlers,
    introspect: () => ({}),
    async onStop() {
      clearInterval(sweeper)
      await outbox.stop()
    },
  }
}
