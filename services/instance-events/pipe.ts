// Business rules of the Notify pipe and of terminals' own streams: who may publish which kind of
// event, ordered durable appends, where a resuming subscriber may start, and retention. Both kinds
// of stream live in one store under a stream key: a device's is its device id, a terminal's is
// terminal/<terminal id> (no id contains '/', so the two never meet). Each has its own gapless
// sequence, the same retention and the same subscribers' hub.
import type { Kysely } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { inTransaction } from '../runtime/database.ts'
import { FailedPreconditionError, PermissionDeniedError } from '../runtime/errors.ts'
import { formatIdentity, type Identity } from '../runtime/identity.ts'
import { purge } from '../runtime/retention.ts'
import { traceParentOf } from '../runtime/trace-context.ts'
import { eventsPurge } from './retention.ts'
import * as store from './store/repository.ts'
import { trackAppend } from './subscribers.ts'
import type { EventsDatabase } from './store/tables.ts'

type Db = Kysely<EventsDatabase>

const PREFIX = 'EVENT_KIND_'
export const kindName = (kind: EventKind): string => EventKind[kind].slice(PREFIX.length)
export const kindFromName = (name: string): EventKind => EventKind[`${PREFIX}${name}` as keyof typeof EventKind] ?? EventKind.UNRECOGNIZED

/** The stream key of a device's pipe. */
export const deviceStream = (deviceId: string): string => deviceId
/** The stream key of a terminal's own stream. */
export const terminalStream = (terminalId: string): string => `terminal/${terminalId}`
export const isTerminalStream = (stream: string): boolean => stream.startsWith('terminal/')
export const terminalOfStream = (stream: string): string => stream.slice('terminal/'.length)

/** Which kinds each publisher may append: an instance asks, the services answer. */
const PUBLISHABLE: Record<string, readonly EventKind[]> = {
  instance: [EventKind.EVENT_KIND_LOGIN_REQUESTED, EventKind.EVENT_KIND_PAYMENT_REQUESTED],
  'service/account-management': [EventKind.EVENT_KIND_LOGIN_VERIFIED, EventKind.EVENT_KIND_LOGIN_REJECTED],
  // PaymentManagement tells how each order ended, once it stored that (effective: AppService delivered).
  'service/payment-management': [EventKind.EVENT_KIND_ORDER_EFFECTIVE, EventKind.EVENT_KIND_ORDER_FAILED],
}

export function assertMayPublish(publisher: Identity, kind: EventKind): void {
  const allowed = PUBLISHABLE[publisher.role === 'instance' ? 'instance' : formatIdentity(publisher)] ?? []
  if (!allowed.includes(kind)) {
    throw new PermissionDeniedError('KIND_NOT_ALLOWED', `${formatIdentity(publisher)} may not publish ${EventKind[kind]}`, { kind: EventKind[kind] })
  }
}

/** What each service may append to terminals' streams: PaymentManagement pushes orders, AccountManagement ends enrolments, a platform tells of offline redemptions. */
const TERMINAL_PUBLISHABLE: Record<string, readonly EventKind[]> = {
  'service/payment-management': [EventKind.EVENT_KIND_PAYMENT_PUSHED, EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE],
  'service/account-management': [EventKind.EVENT_KIND_TERMINAL_REMOVED],
  'service/payment-platform': [EventKind.EVENT_KIND_OFFLINE_CODE_REDEEMED],
}

export function assertMayPublishToTerminals(publisher: Identity, kind: EventKind): void {
  if (!(TERMINAL_PUBLISHABLE[formatIdentity(publisher)] ?? []).includes(kind)) {
    throw new PermissionDeniedError('KIND_NOT_ALLOWED', `${formatIdentity(publisher)} may not publish ${EventKind[kind]} to terminals`, { kind: EventKind[kind] })
  }
}

/**
 * Appends a device event. `subjectCreatedAt` (a service's, about its login or order) places it in
 * the device's rental of that moment (rental-boundary.ts): one about an ended rental reaches only
 * that rental's readers.
 */
export function publish(
  db: Db,
  event: { deviceId: string; kind: EventKind; subjectId: string; publisher: Identity; subjectCreatedAt?: Date },
  trx?: Parameters<typeof store.appendEvent>[0],
) {
  const row = {
    deviceId: deviceStream(event.deviceId),
    kind: kindName(event.kind),
    subjectId: event.subjectId,
    publisher: formatIdentity(event.publisher),
    traceParent: traceParentOf(),
    subjectCreatedAt: event.publisher.role === 'service' ? event.subjectCreatedAt : undefined,
  }
  return trx ? append(trx, row) : inTransaction(db, (t) => append(t, row))
}

/** Stores an event, and lets this replica's hub serve it once committed (subscribers.ts). */
async function append(trx: Parameters<typeof store.appendEvent>[0], event: Parameters<typeof store.appendEvent>[1]): Promise<store.EventRow> {
  const row = await store.appendEvent(trx, event)
  trackAppend(trx, row)
  return row
}

/** Appends an event to a terminal's own stream, in the caller's transaction. */
export function publishToTerminal(
  trx: Parameters<typeof store.appendEvent>[0],
  event: { terminalId: string; kind: EventKind; subjectId: string; publisher: Identity; occurredAt?: Date },
): Promise<store.EventRow> {
  return append(trx, {
    deviceId: terminalStream(event.terminalId),
    kind: kindName(event.kind),
    subjectId: event.subjectId,
    publisher: formatIdentity(event.publisher),
    // A removal ends the enrolment: the stream's row keeps where (ListChannels hides what closed before).
    ...(event.kind === EventKind.EVENT_KIND_TERMINAL_REMOVED ? { endsEnrolment: { at: event.occurredAt } } : {}),
    traceParent: traceParentOf(),
  })
}

/** Whose part of a stream a reader gets (rental-boundary.ts). */
export interface StreamScope {
  /** The device's instance and terminals: only its current rental's events. */
  readonly currentRentalOnly?: boolean
  /** A terminal's own stream: only what was stored since its current enrolment. */
  readonly since?: Date
}

/** Where a reader starts, and the rental whose events it gets (undefined: every event after `from`). */
export interface ReadFrom {
  readonly from: bigint
  readonly rental?: bigint
}

/**
 * A subscriber may resume after any sequence whose successors are all still retained. When some
 * expired, it must be told (OUT_OF_RANGE-like precondition) instead of silently missing them.
 * Returns the sequence to read after, never before the reader's current rental or enrolment, and
 * for a device's instance and terminals the rental whose events are theirs.
 */
export async function assertResumable(db: Db, stream: string, afterSequence: bigint, scope: StreamScope = {}): Promise<ReadFrom> {
  const { lastSequence, oldestRetained, rentalFloor } = await store.streamBounds(db, stream, scope.since)
  // Earlier rentals and enrolments are not the current reader's: their events are skipped, never "expired".
  const bounded = scope.currentRentalOnly === true || scope.since !== undefined
  const floor = bounded ? rentalFloor : 0n
  const rental = scope.currentRentalOnly ? rentalFloor : undefined
  if (afterSequence === 0n) return { from: floor, rental } // the whole retained stream, whatever has expired
  if (afterSequence > lastSequence) {
    throw new FailedPreconditionError('SEQUENCE_AHEAD', `after_sequence ${afterSequence} is beyond the ${isTerminalStream(stream) ? 'terminal' : 'device'}'s newest event (${lastSequence})`, {
      last_sequence: String(lastSequence),
    })
  }
  const from = afterSequence > floor ? afterSequence : floor
  const firstWanted = from + 1n
  const firstAvailable = oldestRetained ?? lastSequence + 1n
  if (firstWanted < firstAvailable) {
    throw new FailedPreconditionError(
      'EVENTS_EXPIRED',
      `events ${firstWanted}..${firstAvailable - 1n} of ${isTerminalStream(stream) ? 'terminal' : 'device'} ${isTerminalStream(stream) ? terminalOfStream(stream) : stream} expired; resume with after_sequence=${firstAvailable - 1n} after resynchronising`,
      { oldest_sequence: String(firstAvailable) },
    )
  }
  return { from, rental }
}

/** The reader of `rental` gets this event (rental-boundary.ts): it belongs to that rental, or the reader is not bounded by one. */
export const belongsTo = (rental: bigint | undefined) => (row: store.EventRow): boolean => rental === undefined || BigInt(row.rental_floor) === rental

const readsByDb = new WeakMap<Db, Map<string, Promise<store.EventRow[]>>>()

/**
 * Events after a sequence. Subscribers of one device at the same cursor share one query: a
 * publish to a device followed by thousands wakes them all, and they all read the same rows.
 */
export function readEvents(db: Db, stream: string, afterSequence: bigint, limit: number, rental?: 'current'): Promise<store.EventRow[]> {
  let reads = readsByDb.get(db)
  if (!reads) readsByDb.set(db, (reads = new Map()))
  const key = `${stream}\0${afterSequence}\0${limit}\0${rental ?? ''}`
  let pending = reads.get(key)
  if (!pending) {
    pending = store.readEvents(db, stream, afterSequence, limit, rental).finally(() => reads!.delete(key))
    reads.set(key, pending)
  }
  return pending
}

/**
 * Deletes events older than the retention period, as the service's background retention does
 * (services/instance-events/retention.ts): bounded batches, yielding to the event loop between them.
 */
export function expireEvents(db: Db, retentionMs: number, now: Date): Promise<number> {
  return purge(eventsPurge(db, retentionMs), { now })
}
