// What the outbox delivers for AccountManagement: the end of an assignment (a released or
// re-rented device) to the services that granted something on the device, and the end of a
// removed terminal's enrolment (its push stream, its pending claims, its offline credentials).
// Each delivery's id is the request id the receiver dedupes on, so a retry never acts twice.
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { publishToTerminals } from '../runtime/mesh-calls.ts'
import type { DeliveryHandler } from '../runtime/outbox.ts'
import type { Peers } from '../runtime/peers.ts'
import { type EndedAssignment, TOPICS } from './grants.ts'
import { cancelDeviceOrders, closeDeviceChannels, endDeviceSessions, endTerminalClaims, endTerminalCredentials } from './peers.ts'
import * as terminals from './terminals.ts'

const ended = (payload: Record<string, string>): EndedAssignment => payload as unknown as EndedAssignment
const removed = (payload: Record<string, string>): terminals.RemovedTerminal => payload as unknown as terminals.RemovedTerminal

export function handOffs(peers: Peers): Record<string, DeliveryHandler> {
  return {
    [TOPICS.endSessions]: async (payload, deliveryId) => {
      const { device_id, assignment_id, ended_at } = ended(payload)
      await endDeviceSessions(peers, deliveryId, device_id, assignment_id, new Date(ended_at))
    },

    [TOPICS.closeChannels]: async (payload, deliveryId) => {
      const { device_id, ended_at } = ended(payload)
      await closeDeviceChannels(peers, deliveryId, device_id, new Date(ended_at))
    },

    [TOPICS.cancelOrders]: async (payload, deliveryId) => {
      const { device_id, ended_at } = ended(payload)
      await cancelDeviceOrders(peers, deliveryId, device_id, new Date(ended_at))
    },

    // The removed terminal's stream tells it and ends (on whichever replica serves it).
    [terminals.TOPICS.endStream]: async (payload, deliveryId) => {
      const { terminal_id, enrollment_id, removed_at } = removed(payload)
      await publishToTerminals(peers, {
        requestId: deliveryId,
        terminalIds: [terminal_id],
        kind: EventKind.EVENT_KIND_TERMINAL_REMOVED,
        subjectId: enrollment_id,
        occurTime: new Date(removed_at),
      })
    },

    [terminals.TOPICS.endClaims]: async (payload, deliveryId) => {
      const { terminal_id, removed_at } = removed(payload)
      await endTerminalClaims(peers, deliveryId, terminal_id, new Date(removed_at))
    },

    // A phone removed from its account (or moving to another) spends nothing more offline.
    [terminals.TOPICS.endOfflineCredentials]: async (payload, deliveryId) => {
      const { terminal_id, removed_at } = removed(payload)
      await endTerminalCredentials(peers, deliveryId, terminal_id, new Date(removed_at))
    },
  }
}
