// Payment results go to PaymentManagement through the outbox: signed with this service's key,
// sent at least once under a stable request id, retried with backoff until acknowledged.
import { readFile } from 'node:fs/promises'
import type { Kysely } from 'kysely'
import { PaymentResult } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { derivedRequestId } from '../runtime/idempotency.ts'
import { enqueue } from '../runtime/outbox.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'
import { signPaymentResult } from '../runtime/payment-signature.ts'
import type { TransactionRow } from './store/repository.ts'

export const PAYMENT_RESULT_TOPIC = 'payment-result'

/** Queues the result of a settled transaction, in the settling transaction. */
export function queuePaymentResult(trx: Kysely<any>, txn: TransactionRow): Promise<string> {
  return enqueue(
    trx,
    PAYMENT_RESULT_TOPIC,
    {
      platform_id: txn.platform_id,
      serial_number: txn.serial_number,
      currency_code: txn.currency_code,
      amount_minor: txn.amount_minor.toString(),
      complete_time: (txn.completed_at ?? new Date()).toISOString(),
    },
    derivedRequestId('payment-result', txn.platform_id, txn.serial_number),
  )
}

export function paymentResultSender(peers: Peers, keyFile: string) {
  return async (payload: Record<string, string>, deliveryId: string): Promise<void> => {
    const fields = {
      platformId: payload.platform_id!,
      serialNumber: payload.serial_number!,
      result: 'SUCCEEDED',
      currencyCode: payload.currency_code!,
      amountMinor: BigInt(payload.amount_minor!),
      completeTime: payload.complete_time!,
    }
    const signature = signPaymentResult(await readFile(keyFile, 'utf8'), fields)
    await callPeer(
      'payment-management',
      unaryCall(peers.get('payment-management'), 'reportPaymentResult', {
        requestId: deliveryId,
        platformId: fields.platformId,
        serialNumber: fields.serialNumber,
        result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
        amount: { currencyCode: fields.currencyCode, amountMinor: fields.amountMinor },
        completeTime: new Date(fields.completeTime),
        signature,
      }),
    )
  }
}
