// Payment results go to PaymentManagement through the outbox: signed once, when queued in the
// settling transaction, with the transaction's own result key, then sent at least once under a
// stable request id with the same bytes every time, retried with backoff until acknowledged.
import { status as Status } from '@grpc/grpc-js'
import type { Kysely } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { PaymentResult } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { derivedRequestId } from '../runtime/idempotency.ts'
import { type DeliveryTopic, enqueue, isPermanentRefusal } from '../runtime/outbox.ts'
import { publishToTerminals } from '../runtime/mesh-calls.ts'
import type { Peers } from '../runtime/peers.ts'
import { signPaymentResult } from '../runtime/payment-signature.ts'
import type { Sealer } from '../runtime/sealing.ts'
import { reportPaymentResult } from './peers.ts'
import { signingKey } from './result-keys.ts'
import type { TransactionRow } from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

export const PAYMENT_RESULT_TOPIC = 'payment-result'

/** Signs and queues the result of a settled transaction, in the settling transaction. */
export async function queuePaymentResult(trx: Kysely<PlatformDatabase>, sealer: Sealer, txn: TransactionRow): Promise<string> {
  if (!txn.result_key_id) throw new Error(`transaction ${txn.serial_number} has no result key`)
  if (!txn.completed_at) throw new Error(`transaction ${txn.serial_number} is not settled`)
  const fields = {
    keyId: txn.result_key_id,
    platformId: txn.platform_id,
    serialNumber: txn.serial_number,
    result: 'SUCCEEDED',
    currencyCode: txn.currency_code,
    amountMinor: txn.amount_minor,
    completeTime: txn.completed_at.toISOString(),
  }
  const signature = signPaymentResult(await signingKey(trx, sealer, fields.keyId), fields)
  return enqueue(
    trx,
    PAYMENT_RESULT_TOPIC,
    {
      key_id: fields.keyId,
      platform_id: fields.platformId,
      serial_number: fields.serialNumber,
      currency_code: fields.currencyCode,
      amount_minor: fields.amountMinor.toString(),
      complete_time: fields.completeTime,
      signature,
    },
    derivedRequestId('payment-result', txn.platform_id, txn.serial_number),
  )
}

/**
 * Sends a queued result. PaymentManagement refusing it (a bad signature, a malformed result, an
 * order that cannot take it) ends it as a dead letter; NOT_FOUND is retried, up to the outbox's
 * attempt limit: the payer can pay before PaymentManagement has recorded the prepay's serial number.
 */
export function paymentResultSender(peers: Peers): DeliveryTopic {
  const deliver = async (payload: Record<string, string>, deliveryId: string): Promise<void> => {
    await reportPaymentResult(peers, {
      requestId: deliveryId,
      platformId: payload.platform_id!,
      serialNumber: payload.serial_number!,
      result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
      amount: { currencyCode: payload.currency_code!, amountMinor: BigInt(payload.amount_minor!) },
      completeTime: new Date(payload.complete_time!),
      signature: payload.signature!,
      keyId: payload.key_id!,
    })
  }
  return { deliver, isPermanent: (error) => isPermanentRefusal(error) && (error as { code: Status }).code !== Status.NOT_FOUND }
}

export const OFFLINE_REDEEMED_TOPIC = 'offline-redeemed'

/** Queues, in the redeeming transaction, the push of a redemption to the credential's terminal stream. */
export function queueOfflineRedeemed(trx: Kysely<PlatformDatabase>, terminalId: string, redemptionId: string): Promise<string> {
  return enqueue(trx, OFFLINE_REDEEMED_TOPIC, { terminal_id: terminalId, redemption_id: redemptionId }, derivedRequestId('offline-redeemed', redemptionId))
}

/** Appends OFFLINE_CODE_REDEEMED {redemption id} to the terminal's own stream (InstanceEvents stores each request id once). */
export function offlineRedeemedSender(peers: Peers): DeliveryTopic {
  return {
    deliver: async (payload, deliveryId) => {
      await publishToTerminals(peers, {
        requestId: deliveryId,
        terminalIds: [payload.terminal_id!],
        kind: EventKind.EVENT_KIND_OFFLINE_CODE_REDEEMED,
        subjectId: payload.redemption_id!,
      })
    },
  }
}
