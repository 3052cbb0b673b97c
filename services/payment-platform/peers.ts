// A payment platform's calls to PaymentManagement: whether a terminal may still act for the
// order a transaction pays (PaymentManagement holds the order and its claims), and the signed
// result of a settled transaction (payment step 5).
import type { AuthorizeTerminalRequest, ReportPaymentResultRequest } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'

/** PaymentManagement's verdict on a terminal acting on a transaction: a short deadline, the caller decides what an outage means. */
export function authorizeTerminal(peers: Peers, request: AuthorizeTerminalRequest, signal: AbortSignal) {
  return callPeer('payment-management', unaryCall(peers.get('payment-management'), 'authorizeTerminal', request, { signal, deadlineMs: 2_000 }))
}

/** Reports a settled transaction's signed result, under the outbox delivery id (sent until acknowledged). */
export async function reportPaymentResult(peers: Peers, request: ReportPaymentResultRequest): Promise<void> {
  await callPeer('payment-management', unaryCall(peers.get('payment-management'), 'reportPaymentResult', request))
}
