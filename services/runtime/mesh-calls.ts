// Calls several services make the same way: is a terminal connected to a device (InstanceEvents
// knows), telling a device or terminals something on the Notify pipe, and is a terminal enrolled
// in an account (AccountManagement knows). Calls only one service makes are in its own peers.ts.
import { status as Status } from '@grpc/grpc-js'
import type { AccountTerminal } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import type { EventKind, PublishToTerminalsRequest } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from './client.ts'
import type { ChannelCheck } from './device-access.ts'
import { derivedRequestId } from './idempotency.ts'
import { callPeer, RelayedError } from './peer-calls.ts'
import type { Peers } from './peers.ts'

export function channelCheckVia(peers: Peers, signal?: AbortSignal): ChannelCheck {
  return async (deviceId, terminalId) => {
    const reply = await callPeer('instance-events', unaryCall(peers.get('instance-events'), 'checkChannel', { deviceId, terminalId }, { signal, deadlineMs: 5_000 }))
    return reply.open
  }
}

/**
 * Publishes an event for a device. The request id is derived from the event's identity, so
 * publishing the same event again (a retried call) stores it once. `subjectCreatedAt` (when the
 * order or login was created) keeps an event about an ended rental with that rental's readers.
 */
export async function publishEvent(
  peers: Peers,
  event: { deviceId: string; kind: EventKind; subjectId: string; subjectCreatedAt?: Date },
  signal?: AbortSignal,
): Promise<bigint> {
  const requestId = derivedRequestId('event', event.deviceId, String(event.kind), event.subjectId)
  const request = { requestId, deviceId: event.deviceId, kind: event.kind, subjectId: event.subjectId, subjectCreateTime: event.subjectCreatedAt }
  const reply = await callPeer('instance-events', unaryCall(peers.get('instance-events'), 'publish', request, { signal, deadlineMs: 5_000 }))
  return reply.event?.sequence ?? 0n
}

/**
 * Appends an event to each terminal's own stream (AccountManagement: a removed terminal;
 * PaymentManagement: pushed and claimed orders; a platform: a redeemed offline code). The request
 * id is the caller's delivery id: InstanceEvents stores each once.
 */
export async function publishToTerminals(peers: Peers, event: Omit<PublishToTerminalsRequest, 'occurTime'> & { occurTime?: Date }): Promise<void> {
  await callPeer('instance-events', unaryCall(peers.get('instance-events'), 'publishToTerminals', { occurTime: undefined, ...event }))
}

/** A terminal's enrolment as AccountManagement records it: undefined when it is enrolled nowhere. */
export async function terminalEnrollment(
  peers: Peers,
  terminalId: string,
  options: { deviceId?: string; seen?: boolean; signal?: AbortSignal } = {},
): Promise<{ terminal: AccountTerminal; servesDevice: boolean } | undefined> {
  try {
    const reply = await callPeer(
      'account-management',
      unaryCall(
        peers.get('account-management'),
        'getTerminalEnrollment',
        { terminalId, deviceId: options.deviceId ?? '', seen: options.seen ?? false },
        { signal: options.signal, deadlineMs: 5_000 },
      ),
    )
    return { terminal: reply.terminal!, servesDevice: reply.servesDevice }
  } catch (error) {
    if (error instanceof RelayedError && error.code === Status.NOT_FOUND) return undefined
    throw error
  }
}
