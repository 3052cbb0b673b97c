// PaymentManagement's calls to other services: the application's own record of an order and its
// fulfilment (AppService), the payer account a binding names (AccountManagement), prepays,
// relayed payments, refunds and cancellations (the platform), and wakes for the account's
// terminals (the push relay). Deliveries pass their outbox delivery id as the request id.
import type { FulfilOrderRequest } from '../../gen/cloudpay/app/v1/app_service.ts'
import type { CreatePrepayRequest, PaySealedRequest, RefundTransactionRequest } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { WakeRequest } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'

/** The application's own record of an order: its amount is what is charged, never the instance's number. */
export async function appOrderOf(peers: Peers, appOrderId: string, signal: AbortSignal) {
  const { order } = await callPeer('app-service', unaryCall(peers.get('app-service'), 'getOrder', { appOrderId }, { signal }))
  return order
}

/** Hands a paid order to the application, which makes it effective once per delivery id (payment step 6). */
export async function fulfilOrder(peers: Peers, request: FulfilOrderRequest): Promise<void> {
  await callPeer('app-service', unaryCall(peers.get('app-service'), 'fulfilOrder', request))
}

/** The ids of the enrolled terminals of the account the device is assigned to now. */
export async function terminalsOfDevice(peers: Peers, deviceId: string): Promise<string[]> {
  const { terminals } = await callPeer('account-management', unaryCall(peers.get('account-management'), 'listTerminalsOfDevice', { deviceId }))
  return terminals.map((t) => t.terminalId)
}

/** The platform and payer account a binding names (empty: the default), from AccountManagement, which holds them. */
export function paymentAccount(peers: Peers, deviceId: string, bindingId: string, signal: AbortSignal) {
  return callPeer('account-management', unaryCall(peers.get('account-management'), 'resolvePaymentAccount', { deviceId, bindingId }, { signal }))
}

/** Creates the platform's transaction for a prepay (payment step 4): its serial number and result key. */
export function createPrepay(peers: Peers, request: CreatePrepayRequest, signal: AbortSignal) {
  return callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'createPrepay', request, { signal }))
}

/** A prepay's transaction as its platform has it (was an expiring order paid?): a short deadline, no caller waiting. */
export async function platformTransaction(peers: Peers, platformId: string, serialNumber: string) {
  const { transaction } = await callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'getTransaction', { platformId, serialNumber }, { deadlineMs: 2_000 }))
  return transaction
}

/** A platform's published sealing keys, for terminals that reach only PaymentManagement. */
export function sealingKeys(peers: Peers, platformId: string, signal: AbortSignal) {
  return callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'getSealingKeys', { platformId }, { signal }))
}

/** Relays sealed credentials to the platform; its verdict on them (wrong password, not this terminal's) is the terminal's to see. */
export function paySealed(peers: Peers, request: PaySealedRequest, signal: AbortSignal) {
  return callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'paySealed', request, { signal }), {
    relayDenials: ['PAYMENT_PASSWORD_WRONG', 'TERMINAL_NOT_ALLOWED'],
  })
}

/** Gives a paid order's money back at its platform (the application refused the order). */
export async function refundTransaction(peers: Peers, request: RefundTransactionRequest): Promise<void> {
  await callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'refundTransaction', request))
}

/** Ends an unpaid prepay's transaction at its platform (the order was cancelled or expired). */
export async function cancelTransaction(peers: Peers, requestId: string, platformId: string, serialNumber: string): Promise<void> {
  await callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'cancelTransaction', { requestId, platformId, serialNumber }))
}

/** Wakes a terminal with no open stream through the push relay (its OS vendor's push service). */
export async function wakeTerminal(peers: Peers, request: WakeRequest): Promise<void> {
  await callPeer('push-relay', unaryCall(peers.get('push-relay'), 'wake', request))
}
