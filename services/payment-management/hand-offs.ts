// What the outbox delivers for PaymentManagement: paid orders to the application (payment step
// 6), refunds and cancellations to platforms, and events to the device's pipe. Each delivery's id
// is the request id the receiver dedupes on, so a retry never acts twice.
import { status as Status } from '@grpc/grpc-js'
import type { Kysely } from 'kysely'
import type { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { inTransaction } from '../runtime/database.ts'
import { publishEvent } from '../runtime/mesh-calls.ts'
import type { DeliveryHandler } from '../runtime/outbox.ts'
import { callPeer, RelayedError } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'
import * as orders from './orders.ts'
import type { PaymentDatabase } from './store/tables.ts'

export function handOffs(db: Kysely<PaymentDatabase>, peers: Peers): Record<string, DeliveryHandler> {
  return {
    [orders.TOPICS.fulfil]: async (payload, deliveryId) => {
      const order = await orders.get(db, payload.order_id!)
      if (order.state !== 'paid') return // already effective, or refunded meanwhile
      try {
        await callPeer(
          'app-service',
          unaryCall(peers.get('app-service'), 'fulfilOrder', {
            requestId: deliveryId,
            appOrderId: order.app_order_id,
            paidAmount: { currencyCode: order.currency_code, amountMinor: order.amount_minor },
            paymentOrderId: order.order_id,
            platformId: order.platform_id!,
            serialNumber: order.serial_number!,
            deviceId: order.device_id,
          }),
        )
      } catch (error) {
        // The application refused the order (unknown, or the amount does not match): refund.
        if (error instanceof RelayedError && (error.code === Status.NOT_FOUND || error.code === Status.FAILED_PRECONDITION || error.code === Status.INVALID_ARGUMENT)) {
          await inTransaction(db, async (trx) => {
            const locked = await orders.get(trx, order.order_id)
            if (locked.state === 'paid') await orders.refundLater(trx, locked, `the application refused it: ${error.message}`)
          })
          return
        }
        throw error
      }
      await inTransaction(db, (trx) => orders.markEffective(trx, order.order_id))
    },

    [orders.TOPICS.refund]: async (payload, deliveryId) => {
      const order = await orders.get(db, payload.order_id!)
      await callPeer(
        'payment-platform',
        unaryCall(peers.get('payment-platform'), 'refundTransaction', {
          requestId: deliveryId,
          platformId: order.platform_id!,
          serialNumber: order.serial_number!,
          reason: order.end_reason.slice(0, 200),
        }),
      )
      await inTransaction(db, (trx) => orders.markRefunded(trx, order.order_id))
    },

    [orders.TOPICS.cancelPrepay]: async (payload, deliveryId) => {
      const order = await orders.get(db, payload.order_id!)
      try {
        await callPeer(
          'payment-platform',
          unaryCall(peers.get('payment-platform'), 'cancelTransaction', { requestId: deliveryId, platformId: order.platform_id!, serialNumber: order.serial_number! }),
        )
      } catch (error) {
        // Paid meanwhile: the platform's payment report arrives and the order is refunded then.
        if (error instanceof RelayedError && error.code === Status.FAILED_PRECONDITION) return
        throw error
      }
    },

    [orders.TOPICS.event]: async (payload) => {
      await publishEvent(peers, { deviceId: payload.device_id!, kind: Number(payload.kind) as EventKind, subjectId: payload.subject_id! })
    },
  }
}
