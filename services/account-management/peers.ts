// AccountManagement's calls to other services: the end of an assignment reaches every service
// that granted something on the device; a removed terminal's claims end at PaymentManagement and
// its offline credentials at PaymentPlatform.
// Each request id is the outbox delivery id, so a retried delivery acts once.
import type { Peers } from '../runtime/peers.ts'
import { unaryCall } from '../runtime/client.ts'
import { callPeer } from '../runtime/peer-calls.ts'

/** AppService ends the app sessions it opened on the device under the ended assignment, which ended at `endTime`. */
export async function endDeviceSessions(peers: Peers, requestId: string, deviceId: string, assignmentId: string, endTime: Date): Promise<void> {
  await callPeer('app-service', unaryCall(peers.get('app-service'), 'endDeviceSessions', { requestId, deviceId, assignmentId, endTime }))
}

/** InstanceEvents closes the terminal channels opened to the device before the assignment ended. */
export async function closeDeviceChannels(peers: Peers, requestId: string, deviceId: string, openedBefore: Date): Promise<void> {
  await callPeer('instance-events', unaryCall(peers.get('instance-events'), 'closeDeviceChannels', { requestId, deviceId, openedBefore }))
}

/** PaymentManagement cancels the device's unpaid orders submitted before the assignment ended. */
export async function cancelDeviceOrders(peers: Peers, requestId: string, deviceId: string, submittedBefore: Date): Promise<void> {
  await callPeer('payment-management', unaryCall(peers.get('payment-management'), 'cancelDeviceOrders', { requestId, deviceId, submittedBefore }))
}

/** PaymentManagement ends the claims a removed terminal made before its removal. */
export async function endTerminalClaims(peers: Peers, requestId: string, terminalId: string, claimedBefore: Date): Promise<void> {
  await callPeer('payment-management', unaryCall(peers.get('payment-management'), 'endTerminalClaims', { requestId, terminalId, claimedBefore }))
}

/** PaymentPlatform revokes the offline credentials a removed terminal provisioned before its removal (their rest back to the payers). */
export async function endTerminalCredentials(peers: Peers, requestId: string, terminalId: string, provisionedBefore: Date): Promise<void> {
  await callPeer('payment-platform', unaryCall(peers.get('payment-platform'), 'endTerminalCredentials', { requestId, terminalId, provisionedBefore }))
}
