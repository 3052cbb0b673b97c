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

export interface EventsDatabase {
  channels: ChannelsTable
  idempotency_keys: IdempotencyKeysTable
}
