// What the outbox delivers for AccountManagement: the end of an assignment (a released or
// re-rented device) to the services that granted something on the device. Each delivery's id is
// the request id the receiver dedupes on, so a retry never acts twice.
import { unaryCall } from '../runtime/client.ts'
import type { DeliveryHandler } from '../runtime/outbox.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'
import { type EndedAssignment, TOPICS } from './grants.ts'

const ended = (payload: Record<string, string>): EndedAssignment => payload as unknown as EndedAssignment

export function handOffs(peers: Peers): Record<string, DeliveryHandler> {
  return {
    [TOPICS.endSessions]: async (payload, deliveryId) => {
      const { device_id, assignment_id } = ended(payload)
      await callPeer('app-service', unaryCall(peers.get('app-service'), 'endDeviceSessions', { requestId: deliveryId, deviceId: device_id, assignmentId: assignment_id }))
    },

    [TOPICS.closeChannels]: async (payload, deliveryId) => {
      const { device_id, ended_at } = ended(payload)
      await callPeer(
        'instance-events',
        unaryCall(peers.get('instance-events'), 'closeDeviceChannels', { requestId: deliveryId, deviceId: device_id, openedBefore: new Date(ended_at) }),
      )
    },

    [TOPICS.cancelOrders]: async (payload, deliveryId) => {
      const { device_id, ended_at } = ended(payload)
      await callPeer(
        'payment-management',
        unaryCall(peers.get('payment-management'), 'cancelDeviceOrders', { requestId: deliveryId, deviceId: device_id, submittedBefore: new Date(ended_at) }),
      )
    },
  }
}
