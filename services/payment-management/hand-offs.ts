// What the outbox delivers for PaymentManagement: paid orders to the application (payment step
// 6), refunds and cancellations to platforms, events to the device's pipe, and pushed and claimed
// orders to the account's own terminals (their streams, and the push relay). Each delivery's id
// is the request id the receiver dedupes on, so a retry never acts twice.
import { status as Status } from '@grpc/grpc-js'
import type { Kysely } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { inTransaction } from '../runtime/database.ts'
import { derivedRequestId } from '../runtime/idempotency.ts'
import { publishEvent, publishToTerminals } from '../runtime/mesh-calls.ts'
import type { DeliveryHandler } from '../runtime/outbox.ts'
import { RelayedError } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'
import * as orders from './orders.ts'
import { cancelTransaction, fulfilOrder, refundTransaction, terminalsOfDevice, wakeTerminal } from './peers.ts'
import type { PaymentDatabase } from './store/tables.ts'

export function handOffs(db: Kysely<PaymentDatabase>, peers: Peers): Record<string, DeliveryHandler> {
  return {
    [orders.TOPICS.fulfil]: async (payload, deliveryId, _attempt, acknowledge) => {
      // A paid order moves on only here, and the hand-off carries what it needs: no read first.
      // (FulfilOrder is idempotent under the delivery id, and every step below is conditional.)
      let order = orders.paidOrderOf(payload)
      if (!order) {
        const row = await orders.get(db, payload.order_id!)
        if (row.state !== 'paid') return // already effective, or refunded meanwhile
        order = row as typeof row & { platform_id: string; serial_number: string }
      }
      try {
        await fulfilOrder(peers, {
          requestId: deliveryId,
          appOrderId: order.app_order_id,
          paidAmount: { currencyCode: order.currency_code, amountMinor: order.amount_minor },
          paymentOrderId: order.order_id,
          platformId: order.platform_id,
          serialNumber: order.serial_number,
          deviceId: order.device_id,
        })
      } catch (error) {
        // The application refused the order (unknown, or the amount does not match): refund.
        if (error instanceof RelayedError && (error.code === Status.NOT_FOUND || error.code === Status.FAILED_PRECONDITION || error.code === Status.INVALID_ARGUMENT)) {
          await inTransaction(db, async (trx) => {
            const locked = await orders.get(trx, order.order_id)
            if (locked.state === 'paid') await orders.refundLater(trx, locked, `the application refused it: ${error.message}`)
            await acknowledge(trx)
          })
          return
        }
        throw error
      }
      await inTransaction(db, async (trx) => {
        await orders.markEffective(trx, order.order_id)
        await acknowledge(trx)
      })
    },

    [orders.TOPICS.refund]: async (payload, deliveryId, _attempt, acknowledge) => {
      const order = await orders.get(db, payload.order_id!)
      await refundTransaction(peers, {
        requestId: deliveryId,
        platformId: order.platform_id!,
        serialNumber: order.serial_number!,
        reason: order.end_reason.slice(0, 200),
      })
      await inTransaction(db, async (trx) => {
        await orders.markRefunded(trx, order.order_id)
        await acknowledge(trx)
      })
    },

    [orders.TOPICS.cancelPrepay]: async (payload, deliveryId) => {
      const order = await orders.get(db, payload.order_id!)
      try {
        await cancelTransaction(peers, deliveryId, order.platform_id!, order.serial_number!)
      } catch (error) {
        // Paid meanwhile: the platform's payment report arrives and the order is refunded then.
        if (error instanceof RelayedError && error.code === Status.FAILED_PRECONDITION) return
        throw error
      }
    },

    [orders.TOPICS.event]: async (payload) => {
      const subjectCreatedAt = payload.subject_created_at ? new Date(payload.subject_created_at) : undefined // absent in deliveries queued before it was recorded
      await publishEvent(peers, { deviceId: payload.device_id!, kind: Number(payload.kind) as EventKind, subjectId: payload.subject_id!, subjectCreatedAt })
    },

    // An order waiting for payment, to every enrolled terminal of the account its device serves
    // now (terminals of other accounts get nothing): PAYMENT_PUSHED on each one's stream, and a
    // wake through the push relay for each, under a request id stable per order and terminal.
    [orders.TOPICS.push]: async (payload, deliveryId) => {
      // Terminals first (most accounts have none): the order is read only when there is someone to push to.
      const terminalIds = payload.device_id ? await terminalsOfDevice(peers, payload.device_id) : undefined
      if (terminalIds?.length === 0) return
      const order = await orders.get(db, payload.order_id!)
      if (!orders.isWaiting(order)) return // fetched, claimed or ended meanwhile: nothing to push
      if (terminalIds === undefined) return pushTo(await terminalsOfDevice(peers, order.device_id), deliveryId, order.order_id)
      return pushTo(terminalIds, deliveryId, order.order_id)
    },

    // A claimed order, to the account's other enrolled terminals: it is no longer theirs to claim.
    [orders.TOPICS.claimed]: async (payload, deliveryId) => {
      const order = await orders.get(db, payload.order_id!)
      const others = (await terminalsOfDevice(peers, order.device_id)).filter((id) => id !== order.claimed_by)
      if (others.length > 0) {
        await publishToTerminals(peers, { requestId: deliveryId, terminalIds: others, kind: EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE, subjectId: order.order_id })
      }
    },
  }

  /** PAYMENT_PUSHED on each terminal's stream, and a wake through the push relay for each. */
  async function pushTo(terminalIds: string[], deliveryId: string, orderId: string): Promise<void> {
    if (terminalIds.length === 0) return
    await publishToTerminals(peers, { requestId: deliveryId, terminalIds, kind: EventKind.EVENT_KIND_PAYMENT_PUSHED, subjectId: orderId })
    for (const terminalId of terminalIds) {
      await wakeTerminal(peers, {
        requestId: derivedRequestId(orderId, terminalId, 'wake', String(EventKind.EVENT_KIND_PAYMENT_PUSHED)),
        terminalId,
        kind: EventKind.EVENT_KIND_PAYMENT_PUSHED,
        subjectId: orderId,
      })
    }
  }
}
