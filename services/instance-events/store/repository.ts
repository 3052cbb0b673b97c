// SQL of the instance_events schema. Functions take the database or a transaction.
import { type ExpressionBuilder, type Kysely, type Selectable, sql, type Transaction } from 'kysely'
import { queryTemplate } from '../../runtime/query-template.ts'
import type { ChannelsTable, EventsDatabase, EventsTable } from './tables.ts'

type Db = Kysely<EventsDatabase>
export type ChannelRow = Selectable<ChannelsTable>

/** Inserts an open channel; undefined when the pair already has one open. */
export async function insertOpenChannel(db: Db, channelId: string, deviceId: string, terminalId: string): Promise<ChannelRow | undefined> {
  return (
    db
      .insertInto('channels')
      .values({ channel_id: channelId, device_id: deviceId, terminal_id: terminalId, state: 'open', closed_at: null })
      // A literal, not a parameter: the partial unique index is matched when the statement is
      // planned, and a prepared statement (runtime/prepared-statements.ts) is planned without values.
      .onConflict((oc) => oc.columns(['device_id', 'terminal_id']).where('state', '=', sql.lit('open')).doNothing())
      .returningAll()
      .executeTakeFirst()
  )
}

const FIND_OPEN_CHANNEL = queryTemplate('instance-events.findOpenChannel', (db: Db, v: { deviceId: string; terminalId: string }) =>
  db.selectFrom('channels').selectAll().where('device_id', '=', v.deviceId).where('terminal_id', '=', v.terminalId).where('state', '=', 'open'),
)

export async function findOpenChannel(db: Db, deviceId: string, terminalId: string): Promise<ChannelRow | undefined> {
  return FIND_OPEN_CHANNEL.first(db, { deviceId, terminalId })
}

export async function findChannel(db: Db, channelId: string): Promise<ChannelRow | undefined> {
  return db.selectFrom('channels').selectAll().where('channel_id', '=', channelId).executeTakeFirst()
}

/** Closes an open channel; undefined when it is not open. */
export async function closeChannel(db: Db, channelId: string): Promise<ChannelRow | undefined> {
  return db
    .updateTable('channels')
    .set({ state: 'closed', closed_at: sql`now()` })
    .where('channel_id', '=', channelId)
    .where('state', '=', 'open')
    .returningAll()
    .executeTakeFirst()
}

/** Closes the device's open channels opened before `openedBefore`; returns those it closed. */
export async function closeDeviceChannels(db: Db, deviceId: string, openedBefore: Date): Promise<ChannelRow[]> {
  return db
    .updateTable('channels')
    .set({ state: 'closed', closed_at: sql`now()` })
    .where('device_id', '=', deviceId)
    .where('state', '=', 'open')
    .where('opened_at', '<', openedBefore)
    .returningAll()
    .execute()
}

export interface ChannelFilter {
  readonly terminalId?: string
  readonly deviceId?: string
  readonly includeClosed: boolean
  /**
   * A terminal reading its own channels: the key of its own stream, whose `rental_began_at` is
   * where its latest enrolment ended (rental-boundary.ts); channels closed before then are hidden.
   */
  readonly enrolmentStream?: string
}

/** Channels matching the filter, newest first, with `seq` below `beforeSeq`. */
export async function listChannels(db: Db, filter: ChannelFilter, beforeSeq: bigint | undefined, limit: number): Promise<ChannelRow[]> {
  let query = db.selectFrom('channels').selectAll().orderBy('seq', 'desc').limit(limit)
  if (filter.terminalId) query = query.where('terminal_id', '=', filter.terminalId)
  if (filter.deviceId) query = query.where('device_id', '=', filter.deviceId)
  if (!filter.includeClosed) query = query.where('state', '=', 'open')
  else if (filter.enrolmentStream) {
    const stream = filter.enrolmentStream
    // A scalar subquery in the same statement: closed before the terminal's latest enrolment ended, it was that enrolment's.
    // (An open channel, or no enrolment ended yet: null, so kept.)
    query = query.where(
      (eb) => sql<boolean>`coalesce(${eb.ref('closed_at')} >= (${eb.selectFrom('device_streams').select('rental_began_at').where('device_id', '=', stream)}), true)`,
    )
  }
  if (beforeSeq !== undefined) query = query.where('seq', '<', beforeSeq)
  return query.execute()
}

export type EventRow = Selectable<EventsTable>

/**
 * Wakes Notify subscribers of a stream on every replica (delivered when the transaction commits).
 * The payload is the stream key and the new sequence ("<key> <sequence>"; keys have no spaces),
 * so a replica whose subscribers already have that event reads nothing.
 */
export const EVENTS_CHANNEL = 'cloudpay_events'

/** The stream key and sequence of an EVENTS_CHANNEL payload (the sequence is absent in the older form, the key alone). */
export function parseEventsNotification(payload: string): { stream: string; sequence: bigint | undefined } {
  const [stream, sequence] = payload.split(' ')
  return { stream: stream!, sequence: sequence && /^\d{1,19}$/.test(sequence) ? BigInt(sequence) : undefined }
}

/** Tells every replica that a terminal's channel to a device closed (its streams must end). */
export const CHANNELS_CHANNEL = 'cloudpay_channels'

export async function notifyChannelClosed(db: Db, deviceId: string, terminalId: string): Promise<void> {
  await sql`select pg_notify(${CHANNELS_CHANNEL}, ${JSON.stringify([deviceId, terminalId])})`.execute(db)
}

interface AppendedEvent {
  readonly deviceId: string
  readonly kind: string
  readonly subjectId: string
  readonly publisher: string
  readonly traceParent: string
  /** When what the event is about was created, if before now matters (null: of the current rental). */
  readonly at: Date | null
}

/** The append's statement: the sequence, the event and the NOTIFY in one; `ended` for a terminal's removal (when it happened, or null for now). */
function appendStatement(trx: Db, event: AppendedEvent, ended?: { readonly endedAt: Date | null }) {
  const at = event.at
  const endedAt = ended ? sql<Date>`coalesce(${ended.endedAt}::timestamptz, now())` : undefined
  const rental = sql<bigint>`case
    when ${at}::timestamptz is null or stream.rental_began_at is null or ${at}::timestamptz >= stream.rental_began_at then stream.rental_floor
    when stream.previous_rental_began_at is null or ${at}::timestamptz >= stream.previous_rental_began_at then stream.previous_rental_floor
    else -1 end`
  // The upsert locks the device's row: concurrent publishers for one device take turns, so the
  // sequence has no gaps and no duplicates.
  return trx
    .with('stream', (db) =>
      db
        .insertInto('device_streams')
        .values({ device_id: event.deviceId, last_sequence: 1n, ...(endedAt ? { rental_began_at: endedAt } : {}) })
        .onConflict((oc) =>
          oc.column('device_id').doUpdateSet({
            last_sequence: sql`device_streams.last_sequence + 1`,
            // A terminal's stream: where its latest ended enrolment stopped (never moved back; greatest skips a null).
            ...(endedAt ? { rental_began_at: sql`greatest(device_streams.rental_began_at, excluded.rental_began_at)` } : {}),
          }),
        )
        .returning(['last_sequence', 'rental_floor', 'rental_began_at', 'previous_rental_floor', 'previous_rental_began_at']),
    )
    .with('appended', (db) =>
      db
        .insertInto('events')
        .columns(['device_id', 'sequence', 'kind', 'subject_id', 'publisher', 'trace_parent', 'rental_floor'])
        .expression((eb) =>
          eb
            .selectFrom('stream')
            .select([
              sql.val(event.deviceId).as('device_id'),
              'stream.last_sequence',
              sql.val(event.kind).as('kind'),
              sql.val(event.subjectId).as('subject_id'),
              sql.val(event.publisher).as('publisher'),
              sql.val(event.traceParent).as('trace_parent'),
              rental.as('rental_floor'),
            ]),
        )
        .returningAll(),
    )
    .selectFrom('appended')
    .selectAll()
    .select(sql<string>`pg_notify(${EVENTS_CHANNEL}, appended.device_id || ' ' || appended.sequence)`.as('notified'))
}
const APPEND_EVENT = queryTemplate('instance-events.appendEvent', (trx: Db, event: AppendedEvent) => appendStatement(trx, event))
const APPEND_ENDING_EVENT = queryTemplate('instance-events.appendEndingEvent', (trx: Db, event: AppendedEvent & { endedAt: Date | null }) => appendStatement(trx, event, event))

/**
 * Appends an event with the device's next sequence number and wakes its subscribers on every
 * replica: one statement (the sequence, the event and the NOTIFY in one round trip).
 */
export async function appendEvent(
  trx: Transaction<EventsDatabase>,
  event: { deviceId: string; kind: string; subjectId: string; publisher: string; traceParent: string; subjectCreatedAt?: Date; endsEnrolment?: { readonly at?: Date } },
): Promise<EventRow> {
  // The rental the event belongs to (rental-boundary.ts): the current one, unless what it is about
  // was created before the current rental began (an order the release cancelled, told later).
  const appended: AppendedEvent = {
    deviceId: event.deviceId,
    kind: event.kind,
    subjectId: event.subjectId,
    publisher: event.publisher,
    traceParent: event.traceParent,
    at: event.subjectCreatedAt ?? null,
  }
  const found = event.endsEnrolment ? await APPEND_ENDING_EVENT.first(trx, { ...appended, endedAt: event.endsEnrolment.at ?? null }) : await APPEND_EVENT.first(trx, appended)
  if (!found) throw new Error('appending an event returned no row')
  const { notified: _, ...row } = found
  return row
}

/** Events of a stream after a sequence number, in order; with `rental`, only those of the stream's current rental (rental-boundary.ts). */
export async function readEvents(db: Db, deviceId: string, afterSequence: bigint, limit: number, rental?: 'current'): Promise<EventRow[]> {
  return (rental === 'current' ? READ_CURRENT_RENTAL_EVENTS : READ_EVENTS).rows(db, { deviceId, afterSequence, limit })
}
type EventsAfter = { deviceId: string; afterSequence: bigint; limit: number }
const eventsAfter = (db: Db, v: EventsAfter) => db.selectFrom('events').selectAll().where('device_id', '=', v.deviceId).where('sequence', '>', v.afterSequence)
const READ_EVENTS = queryTemplate('instance-events.readEvents', (db: Db, v: EventsAfter) => eventsAfter(db, v).orderBy('sequence').limit(v.limit))
const READ_CURRENT_RENTAL_EVENTS = queryTemplate('instance-events.readCurrentRentalEvents', (db: Db, v: EventsAfter) =>
  eventsAfter(db, v)
    .where('rental_floor', '=', (eb) => eb.selectFrom('device_streams').select('rental_floor').where('device_id', '=', v.deviceId))
    .orderBy('sequence')
    .limit(v.limit),
)

/** When the device's current rental began (rental-boundary.ts), as a scalar subquery; null before its first release. */
export const rentalBeganAt = (eb: ExpressionBuilder<any, any>, deviceId: string) =>
  (eb as ExpressionBuilder<EventsDatabase, never>).selectFrom('device_streams').select('rental_began_at').where('device_id', '=', deviceId)

/**
 * The newest sequence ever assigned to a stream, its oldest retained one, and where its current
 * rental begins: the stored floor, or, `since` given (a terminal's enrolment), past every event
 * stored before then if that is later. Still two statements.
 */
export async function streamBounds(db: Db, deviceId: string, since?: Date): Promise<{ lastSequence: bigint; oldestRetained: bigint | undefined; rentalFloor: bigint }> {
  const stream = await db.selectFrom('device_streams').select(['last_sequence', 'rental_floor']).where('device_id', '=', deviceId).executeTakeFirst()
  const oldest = await db
    .selectFrom('events')
    .select((eb) => [
      eb.fn.min('sequence').as('oldest'),
      since ? eb.fn.max(eb.case().when('created_at', '<', since).then(eb.ref('sequence')).end()).as('before_since') : sql<null>`null`.as('before_since'),
    ])
    .where('device_id', '=', deviceId)
    .executeTakeFirst()
  const value = oldest?.oldest as bigint | string | null | undefined
  const beforeSince = BigInt((oldest?.before_since as bigint | string | null | undefined) ?? 0n)
  const floor = BigInt(stream?.rental_floor ?? 0n)
  return {
    lastSequence: stream?.last_sequence ?? 0n,
    oldestRetained: value === null || value === undefined ? undefined : BigInt(value),
    rentalFloor: beforeSince > floor ? beforeSince : floor,
  }
}

/** A release at `releasedAt` ends the device's rental: the floor moves to its newest event published before then (never back). */
export async function raiseRentalFloor(db: Db, deviceId: string, releasedAt: Date): Promise<void> {
  const before = db
    .selectFrom('events')
    .select((eb) => eb.fn.max('sequence').as('newest'))
    .where('device_id', '=', deviceId)
    .where('created_at', '<', releasedAt)
  // The rental that ends becomes the previous one: its late events are still tagged as its own (appendEvent).
  await db
    .updateTable('device_streams')
    .set({
      rental_floor: sql`greatest(device_streams.rental_floor, coalesce((${before}), 0))`,
      rental_began_at: releasedAt,
      previous_rental_floor: sql`device_streams.rental_floor`,
      previous_rental_began_at: sql`device_streams.rental_began_at`,
    })
    .where('device_id', '=', deviceId)
    .where((eb) => eb.or([eb('rental_began_at', 'is', null), eb('rental_began_at', '<', releasedAt)]))
    .execute()
}

/** Deletes up to `limit` events created before `before`; returns how many. */
export async function deleteEventsBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('events')
    .where((eb) =>
      eb(
        eb.refTuple('device_id', 'sequence'),
        'in',
        // Rows another replica's purge is deleting are skipped, not waited for.
        eb.selectFrom('events').select(['device_id', 'sequence']).where('created_at', '<', before).limit(limit).forUpdate().skipLocked().$asTuple('device_id', 'sequence'),
      ),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Deletes up to `limit` channels closed before `before`; an open channel is never taken. */
export async function deleteChannelsClosedBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('channels')
    .where('channel_id', 'in', (eb) =>
      eb.selectFrom('channels').select('channel_id').where('state', '=', 'closed').where('closed_at', '<', before).limit(limit).forUpdate().skipLocked(),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
