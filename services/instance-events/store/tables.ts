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
  /** When the current rental began (the release that ended the one before); null before the first release. */
  rental_began_at: Generated<Date | null>
  /** The rental before the current one: its floor and when it began, to tag its late events. */
  previous_rental_floor: Generated<bigint>
  previous_rental_began_at: Generated<Date | null>
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
  /** The floor of the device rental the event belongs to (rental-boundary.ts); -1 for one older than the previous rental. */
  rental_floor: Generated<bigint>
}

export interface EventsDatabase {
  channels: ChannelsTable
  device_streams: DeviceStreamsTable
  events: EventsTable
  idempotency_keys: IdempotencyKeysTable
}
