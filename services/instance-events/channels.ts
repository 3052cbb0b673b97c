// Business rules for connection channels between instances and terminals.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, quote } from '../runtime/errors.ts'
import * as store from './store/repository.ts'
import type { EventsDatabase } from './store/tables.ts'

type Db = Kysely<EventsDatabase>

export async function openChannel(db: Db, deviceId: string, terminalId: string): Promise<store.ChannelRow> {
  const row = await store.insertOpenChannel(db, randomUUID(), deviceId, terminalId)
  if (row) return row
  const existing = await store.findOpenChannel(db, deviceId, terminalId)
  throw new AlreadyExistsError('CHANNEL_ALREADY_OPEN', `terminal ${terminalId} already has an open channel to device ${deviceId}`, {
    channel_id: existing?.channel_id ?? '',
  })
}

export async function closeChannel(db: Db, channelId: string): Promise<store.ChannelRow> {
  const closed = await store.closeChannel(db, channelId)
  if (closed) {
    await endStreamsOf(db, closed)
    return closed
  }
  const existing = await store.findChannel(db, channelId)
  if (!existing) throw new NotFoundError('CHANNEL_NOT_FOUND', `channel ${quote(channelId)} does not exist`, { channel_id: channelId })
  throw new FailedPreconditionError('CHANNEL_CLOSED', `channel ${channelId} is already closed`, { channel_id: channelId })
}

/** The terminal's streams of this device, on every replica, re-check and end. */
function endStreamsOf(db: Db, channel: store.ChannelRow): Promise<void> {
  return store.notifyChannelClosed(db, channel.device_id, channel.terminal_id)
}

/**
 * Closes every channel of a released (or re-rented) device that was opened before the release,
 * and ends those terminals' streams; a channel opened later, for the next renter, stays open.
 */
export async function closeDeviceChannels(db: Db, deviceId: string, openedBefore: Date): Promise<store.ChannelRow[]> {
  // The release begins the device's next rental: its instance and terminals read its stream from here on.
  await store.raiseRentalFloor(db, deviceId, openedBefore)
  const closed = await store.closeDeviceChannels(db, deviceId, openedBefore)
  for (const channel of closed) await endStreamsOf(db, channel)
  return closed
}

export async function isChannelOpen(db: Db, deviceId: string, terminalId: string): Promise<boolean> {
  return (await store.findOpenChannel(db, deviceId, terminalId)) !== undefined
}

export function findOpenChannel(db: Db, deviceId: string, terminalId: string): Promise<store.ChannelRow | undefined> {
  return store.findOpenChannel(db, deviceId, terminalId)
}

export function listChannels(db: Db, filter: store.ChannelFilter, beforeSeq: bigint | undefined, limit: number): Promise<store.ChannelRow[]> {
  return store.listChannels(db, filter, beforeSeq, limit)
}
