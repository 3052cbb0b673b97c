// SQL of the instance_events schema. Functions take the database or a transaction.
import type { Kysely, Selectable } from 'kysely'
import type { ChannelsTable, EventsDatabase } from './tables.ts'

type Db = Kysely<EventsDatabase>
export type ChannelRow = Selectable<ChannelsTable>

/** Inserts an open channel; undefined when the pair already has one open. */
export async function insertOpenChannel(db: Db, channelId: string, deviceId: string, terminalId: string): Promise<ChannelRow | undefined> {
  return db
    .insertInto('channels')
    .values({ channel_id: channelId, device_id: deviceId, terminal_id: terminalId, state: 'open', closed_at: null })
    .onConflict((oc) => oc.columns(['device_id', 'terminal_id']).where('state', '=', 'open').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findOpenChannel(db: Db, deviceId: string, terminalId: string): Promise<ChannelRow | undefined> {
  return db.selectFrom('channels').selectAll().where('device_id', '=', deviceId).where('terminal_id', '=', terminalId).where('state', '=', 'open').executeTakeFirst()
}

export async function findChannel(db: Db, channelId: string): Promise<ChannelRow | undefined> {
  return db.selectFrom('channels').selectAll().where('channel_id', '=', channelId).executeTakeFirst()
}

/** Closes an open channel; undefined when it is not open. */
export async function closeChannel(db: Db, channelId: string): Promise<ChannelRow | undefined> {
  return db
    .updateTable('channels')
    .set({ state: 'closed', closed_at: new Date() })
    .where('channel_id', '=', channelId)
    .where('state', '=', 'open')
    .returningAll()
    .executeTakeFirst()
}

export interface ChannelFilter {
  readonly terminalId?: string
  readonly deviceId?: string
  readonly includeClosed: boolean
}

/** Channels matching the filter, newest first, with `seq` below `beforeSeq`. */
export async function listChannels(db: Db, filter: ChannelFilter, beforeSeq: bigint | undefined, limit: number): Promise<ChannelRow[]> {
  let query = db.selectFrom('channels').selectAll().orderBy('seq', 'desc').limit(limit)
  if (filter.terminalId) query = query.where('terminal_id', '=', filter.terminalId)
  if (filter.deviceId) query = query.where('device_id', '=', filter.deviceId)
  if (!filter.includeClosed) query = query.where('state', '=', 'open')
  if (beforeSeq !== undefined) query = query.where('seq', '<', beforeSeq)
  return query.execute()
}
