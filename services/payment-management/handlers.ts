// PaymentManagementService handlers: validate the request, apply the rules, map rows to replies.
import { randomUUID } from 'node:crypto'
import { AppOrderState } from '../../gen/cloudpay/app/v1/app_service.ts'
import {
  CancelDeviceOrdersRequest,
  CancelDeviceOrdersResponse,
  ClaimOrderRequest,
  ClaimOrderResponse,
  EndTerminalClaimsRequest,
  EndTerminalClaimsResponse,
  Gesture,
  CancelOrderRequest,
  CancelOrderResponse,
  FetchOrderRequest,
  FetchOrderResponse,
  type Order,
  OrderState,
  type PaymentManagementServiceService,
  PaymentResult,
  PayThroughRelayRequest,
  PayThroughRelayResponse,
  PrepayOrderRequest,
  PrepayOrderResponse,
  ReportPaymentResultRequest,
  ReportPaymentResultResponse,
  SubmitOrderRequest,
  SubmitOrderResponse,
} from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { assertMayActForDevice } from '../runtime/device-access.ts'
import { FailedPreconditionError, NotFoundError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { formatIdentity } from '../runtime/identity.ts'
import { callOf, derivedRequestId, idempotent, idempotentFlow, idempotentFlowReadingAnswer } from '../runtime/idempotency.ts'
import { isBounded, registerRentalBoundary } from '../runtime/rental-boundary.ts'
import { channelCheckVia, terminalEnrollment } from '../runtime/mesh-calls.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { MAX_SEALED_BYTES } from '../runtime/sealed-credentials.ts'
import type { Handlers, RpcContext } from '../runtime/rpc.ts'
import type { ClaimGesture } from '../runtime/config.ts'
import type { Identity } from '../runtime/identity.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { restoreContext, tagged, traceParentOf } from '../runtime/trace-context.ts'
import { type Format, UUID_PATTERN, validate } from '../runtime/validation.ts'
import * as orders from './orders.ts'
import { appOrderOf, createPrepay, paymentAccount, paySealed, sealingKeys } from './peers.ts'
import * as store from './store/repository.ts'
import type { OrderRow } from './store/repository.ts'
import type { PaymentDatabase } from './store/tables.ts'
import type { Shared } from './workers.ts'

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
  claimedByTerminalId: row.claimed_by ?? '',
  claimGesture: row.claim_gesture ? GESTURES[row.claim_gesture as ClaimGesture] : Gesture.GESTURE_UNSPECIFIED,
  claimTime: row.claimed_at ?? undefined,
})

const GESTURES: Record<ClaimGesture, Gesture> = { tap: Gesture.GESTURE_TAP, slide: Gesture.GESTURE_SLIDE, lift: Gesture.GESTURE_LIFT }
const gestureName = (gesture: Gesture): ClaimGesture | undefined => (Object.keys(GESTURES) as ClaimGesture[]).find((name) => GESTURES[name] === gesture)

/**
 * An instance and terminals read, and act on, the orders of the device's current rental only
 * (rental-boundary.ts): an earlier renter's is ORDER_NOT_FOUND, as one that never existed. The
 * back office and the services read all.
 */
const rentalScopeOf = (caller: Identity) => ({ currentRentalOnly: isBounded(caller) })

const ORDER_ID: Format = { pattern: UUID_PATTERN, description: 'must be an order id returned by SubmitOrder' }
/** Platforms sign with their service key: base64url of an ECDSA or RSA (up to 4096-bit) signature. */
const SIGNATURE: Format = { pattern: /^[A-Za-z0-9_-]{16,700}$/, description: 'must be the base64url signature of the payment result' }
const BINDING_ID: Format = { pattern: UUID_PATTERN, description: 'must be a binding id returned by BindPaymentAccount, or empty for the default' }

export function createHandlers(deps: ServiceDeps<PaymentDatabase>, { outbox }: Shared): Handlers<typeof PaymentManagementServiceService> {
  const db = deps.db
  // An instance's stored answers are its device's current rental's only.
  registerRentalBoundary(db, (caller, eb) => (caller.role === 'instance' ? store.rentalBeganAt(eb, caller.id) : undefined))
  const now = () => deps.clock.now()
  const settings = deps.config.payment
  /**
   * The one place that decides who may act for a device, or for one of its orders: an instance
   * for its own device; a terminal with an open channel to the device; and, for an order, the
   * enrolled terminal that claimed it, while it is enrolled in the account the device serves
   * (its removal ends that at once). Operators and services pass (their rules admit them).
   */
  const mayActFor = async (ctx: { caller: Identity; signal: AbortSignal }, deviceId: string, order?: OrderRow | string): Promise<void> => {
    if (ctx.caller.role === 'terminal' && order !== undefined) {
      const row = typeof order === 'string' ? await store.findOrder(db, order) : order
      if (row && row.device_id === deviceId && row.claimed_by === ctx.caller.id) {
        if ((await terminalEnrollment(deps.peers, ctx.caller.id, { deviceId, signal: ctx.signal }))?.servesDevice) return
        if (!(await channelCheckVia(deps.peers, ctx.signal)(deviceId, ctx.caller.id))) {
          throw new PermissionDeniedError(
            'CLAIM_ENDED',
            `terminal ${ctx.caller.id} claimed order ${row.order_id} but is no longer enrolled in the account device ${deviceId} serves`,
          )
        }
        return
      }
    }
    await assertMayActForDevice(ctx.caller, deviceId, channelCheckVia(deps.peers, ctx.signal))
  }
  /**
   * Who may act on an order (prepay, pay through the relay, cancel; and AuthorizeTerminal's
   * answer to a platform): mayActFor with the order, so its claimer is admitted too.
   */
  const assertMayActForOrder = (ctx: { caller: Identity; signal: AbortSignal }, order: OrderRow) => mayActFor(ctx, order.device_id, order)
  /** The order a request names, if it is the named device's and the caller may act on it. */
  const orderActedOnBy = async (ctx: RpcContext, deviceId: string, orderId: string, known?: OrderRow | null): Promise<OrderRow> => {
    // `known`: the row if the caller read it already (null: read, and there is none).
    const order = known ? known : known === null ? orders.notFound(orderId) : await orders.get(db, orderId, rentalScopeOf(ctx.caller))
    if (order.device_id !== deviceId) throw new PermissionDeniedError('NOT_OWN_ORDER', `order ${quote(orderId)} does not belong to device ${quote(deviceId)}`)
    await assertMayActForOrder(ctx, order)
    return order
  }

  return {
    submitOrder: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').id(request.appOrderId, 'app_order_id'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      const reply = await idempotentFlow(db, callOf(ctx, request, SubmitOrderRequest, SubmitOrderResponse), (commit) => {
        // The order's id exists from the start, so every span of the submission carries it.
        const orderId = randomUUID()
        return tagged({ orderId, deviceId: request.deviceId }, async () => {
          // The amount is the application's own record of the order; the instance sends none.
          const appOrder = await appOrderOf(deps.peers, request.appOrderId, ctx.signal)
          if (!appOrder || appOrder.deviceId !== request.deviceId)
            throw new PermissionDeniedError('NOT_OWN_ORDER', `app_order_id ${quote(request.appOrderId)} was not placed from device ${quote(request.deviceId)}`)
          if (appOrder.state !== AppOrderState.APP_ORDER_STATE_PENDING) {
            // An earlier renter's app order (the release rejected it) is answered as AppService answers one that never existed; read only on this refusal.
            if (await orders.isOfEarlierRental(db, request.deviceId, appOrder.createTime)) throw new NotFoundError('ORDER_NOT_FOUND', `app_order_id: no order ${quote(request.appOrderId)}`)
            throw new FailedPreconditionError('APP_ORDER_NOT_PENDING', `app order ${quote(request.appOrderId)} is not waiting for payment`)
          }
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
          return commit(async (trx) => ({ order: toOrder(await orders.submit(trx, input, settings.orderTtlMs, now())) }))
        })
        // Its preparation is one read at AppService: a retry may repeat it.
      }, { repeatablePreparation: true })
      outbox.kick() // the push to the account's terminals
      return reply
    },

    fetchOrder: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id'))
      await mayActFor(ctx, request.deviceId)
      return idempotent(db, callOf(ctx, request, FetchOrderRequest, FetchOrderResponse), async (trx) => {
        const fetched = await orders.fetchNext(trx, request.deviceId, now())
        ctx.span.setAttribute('cloudpay.order_id', fetched.order_id)
        return { order: toOrder(fetched) }
      })
    },

    getOrder: async (request, ctx) => {
      validate((v) => v.format(request.orderId, 'order_id', ORDER_ID))
      const order = await orders.get(db, request.orderId, rentalScopeOf(ctx.caller))
      await mayActFor(ctx, order.device_id, order)
      return { order: toOrder(order) }
    },

    listOrders: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').page(request))
      await mayActFor(ctx, request.deviceId)
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { deviceId: request.deviceId },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => orders.list(db, request.deviceId, after, limit, rentalScopeOf(ctx.caller)),
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
      return idempotentFlowReadingAnswer(db, callOf(ctx, request, PrepayOrderRequest, PrepayOrderResponse), async (commit, stored) => {
        // One read: the order, and an answer stored under this request id (a retry of an answered
        // prepay returns it here, its own earlier answer, having asked no one again).
        const found = await store.findOrderReadingAnswer(db, request.orderId, stored, rentalScopeOf(ctx.caller))
        const previous = stored.answer(found?.storedAnswer)
        if (previous) return previous
        const order = await orderActedOnBy(ctx, request.deviceId, request.orderId, found?.order ?? null)
        return tagged({ orderId: order.order_id, deviceId: order.device_id }, async () => {
          // Peer calls outside any transaction; the state is re-checked by the transition after.
          const account = await paymentAccount(deps.peers, request.deviceId, request.bindingId, ctx.signal)
          const collectionAccount = orders.assertPrepayable(order, account.platformId, now())
          const { transaction, resultKey } = await createPrepay(
            deps.peers,
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
              // The transaction expires with the order, not on the platform's own clock.
              expireTime: order.expires_at,
            },
            ctx.signal,
          )
          const prepay = { platformId: account.platformId, serialNumber: transaction!.serialNumber, resultKeyId: resultKey!.keyId, resultPublicKey: resultKey!.publicKey }
          return commit(async (trx) => ({
            order: toOrder(await orders.recordPrepay(trx, order.order_id, prepay)),
            platformId: prepay.platformId,
            serialNumber: prepay.serialNumber,
          }))
        })
      })
    },

    getSealingKeys: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id'))
      // Relayed as published: the signatures are the platform's, so nothing here could swap a key.
      return sealingKeys(deps.peers, request.platformId, ctx.signal)
    },

    payThroughRelay: async (request, ctx) => {
      // The sealed credentials go to the platform as they came; their size is all that is kept of
      // them anywhere here (this span attribute): not in a table, a log line or another span.
      ctx.span.setAttribute('cloudpay.sealed_bytes', request.sealed.length)
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.orderId, 'order_id', ORDER_ID)
          .id(request.platformId, 'platform_id')
          .id(request.serialNumber, 'serial_number')
          .opaqueId(request.keyId, 'key_id')
          .bytes(request.sealed, 'sealed', { min: 1, max: MAX_SEALED_BYTES }),
      )
      const order = await orderActedOnBy(ctx, request.deviceId, request.orderId)
      // Only the order's own prepay: the relay never carries a payment for another transaction.
      // Whether it can still be paid is the platform's to say (it holds the transaction).
      if (order.platform_id !== request.platformId || order.serial_number !== request.serialNumber) {
        throw new FailedPreconditionError(
          'NOT_ORDER_PREPAY',
          `order ${order.order_id} was not prepaid as transaction ${quote(request.serialNumber)} on platform ${quote(request.platformId)}`,
        )
      }
      return idempotentFlow(db, callOf(ctx, request, PayThroughRelayRequest, PayThroughRelayResponse), (commit) =>
        tagged({ orderId: order.order_id, deviceId: order.device_id, platformId: request.platformId }, async () => {
          const { transaction } = await paySealed(
            deps.peers,
            {
              requestId: derivedRequestId(formatIdentity(ctx.caller), 'pay-through-relay', request.requestId),
              platformId: request.platformId,
              serialNumber: request.serialNumber,
              keyId: request.keyId,
              sealed: request.sealed,
              // The terminal this service just checked may act for the order: the prepay must be its own.
              terminalId: ctx.caller.id,
            },
            ctx.signal,
          )
          return commit(async (trx) => ({ order: toOrder(await orders.get(trx, order.order_id)), completeTime: transaction?.completeTime }))
        }),
      )
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
      const fields = {
        platformId: request.platformId,
        serialNumber: request.serialNumber,
        result: PaymentResult[request.result].replace('PAYMENT_RESULT_', ''),
        currencyCode: request.amount!.currencyCode,
        amountMinor: request.amount!.amountMinor,
        completeTime: request.completeTime!.toISOString(),
      }
      // The order is read once, locked, in the transaction that applies the result; the signature
      // is checked there against the key the platform gave for its prepay, before anything changes.
      const reply = await idempotent(db, callOf(ctx, request, ReportPaymentResultRequest, ReportPaymentResultResponse), async (trx) => {
        const order = await orders.lockBySerial(trx, request.platformId, request.serialNumber)
        return tagged({ orderId: order.order_id, deviceId: order.device_id, platformId: request.platformId }, async () => {
          orders.assertResultSignedByPrepayKey(order, request.keyId, fields, request.signature)
          if (request.result !== PaymentResult.PAYMENT_RESULT_SUCCEEDED) return { order: toOrder(order) }
          return { order: toOrder(await orders.applyPaymentTo(trx, order, request.amount!, request.completeTime!)) }
        })
      })
      outbox.kick()
      return reply
    },

    authorizeTerminal: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').id(request.serialNumber, 'serial_number').id(request.terminalId, 'terminal_id'))
      // Asked for a terminal: the transaction of an order of an earlier rental of its device is none of its own.
      const order = await orders.findBySerial(db, request.platformId, request.serialNumber, { currentRentalOnly: true })
      if (!order) return { allowed: false, reason: 'no order is paid with this transaction' }
      return tagged({ orderId: order.order_id, deviceId: order.device_id, platformId: request.platformId }, async () => {
        try {
          await mayActFor({ caller: { role: 'terminal', id: request.terminalId }, signal: ctx.signal }, order.device_id, order)
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
      const order = await orderActedOnBy(ctx, request.deviceId, request.orderId)
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

    claimOrder: async (request, ctx) => {
      const accepted = deps.config.terminals.claimGestures
      validate((v) =>
        v
          .requestId(request.requestId)
          .format(request.orderId, 'order_id', ORDER_ID)
          .oneOf(
            request.gesture,
            'gesture',
            accepted.map((name) => GESTURES[name]),
            `must be one of ${accepted.map((name) => Gesture[GESTURES[name]]).join(', ')}`,
          ),
      )
      const order = await orders.get(db, request.orderId, rentalScopeOf(ctx.caller))
      const reply = await idempotentFlow(db, callOf(ctx, request, ClaimOrderRequest, ClaimOrderResponse), (commit) =>
        tagged({ orderId: order.order_id, deviceId: order.device_id }, async () => {
          // Only a terminal enrolled in the account the order's device serves now; the question is asked before the transaction.
          const enrollment = await terminalEnrollment(deps.peers, ctx.caller.id, { deviceId: order.device_id, seen: true, signal: ctx.signal })
          if (!enrollment?.servesDevice) {
            throw new PermissionDeniedError('NOT_ENROLLED_FOR_ORDER', `terminal ${ctx.caller.id} is not enrolled in the account of order ${order.order_id}'s device`)
          }
          return commit(async (trx) => ({ order: toOrder(await orders.claim(trx, order.order_id, ctx.caller.id, gestureName(request.gesture)!, now())) }))
        }),
      )
      outbox.kick() // the other terminals are told
      return reply
    },

    endTerminalClaims: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.terminalId, 'terminal_id')
          .check(request.claimedBefore !== undefined, 'claimed_before', 'is required'),
      )
      const reply = await idempotent(db, callOf(ctx, request, EndTerminalClaimsRequest, EndTerminalClaimsResponse), async (trx) => ({
        orderIds: (await orders.endTerminalClaims(trx, request.terminalId, request.claimedBefore!)).map((order) => order.order_id),
      }))
      outbox.kick()
      return reply
    },
  }
}
