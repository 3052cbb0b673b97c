// Row types of the instance_events schema.
import type { Generated } from 'kysely'
import type { IdempotencyKeysTable } from '../../runtime/idempotency.ts'

export type ChannelStateColumn = 'open' | 'closed'

export interface ChannelsTable {
  /** Insertion order, for stable newest-first pages. */
  seq: Generated<bigint>
  channel_id: string
  device_id: string
  terminal_id: string
  state: ChannelStateColumn
  opened_at: Generated<Date>
  closed_at: Date | null
}

/** One row per stream: `device_id` holds the stream key (a device id, or terminal/<id>; pipe.ts). */
export interface DeviceStreamsTable {
  device_id: string
  /** The sequence number of the device's newest event (never reused, even after expiry). */
  last_sequence: bigint
  /** The newest sequence of the device's rentals before the current one (0: none ended); its instance and terminals read only after it. */
  rental_floor: Generated<bigint>
}

export interface EventsTable {
  /** The stream key: a device id, or terminal/<terminal id> for a terminal's own stream (pipe.ts). */
  device_id: string
  sequence: bigint
  /** EventKind name without its prefix, e.g. LOGIN_VERIFIED. */
  kind: string
  subject_id: string
  /** Who published it, role/id. */
  publisher: string
  created_at: Generated<Date>
  /** W3C traceparent of the publishing step. */
  trace_parent: Generated<string>
}

export interface EventsDatabase {
  channels: ChannelsTable
  device_streams: DeviceStreamsTable
  events: EventsTable
  idempotency_keys: IdempotencyKeysTable
}
