// InstanceEventsService handlers: validate the request, apply the rules, map rows to replies.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import {
  type Channel,
  ChannelState,
  CloseChannelRequest,
  CloseChannelResponse,
  CloseDeviceChannelsRequest,
  CloseDeviceChannelsResponse,
  type Event,
  EventKind,
  type InstanceEventsServiceService,
  type NotifyResponse,
  OpenChannelRequest,
  OpenChannelResponse,
  type FollowTerminalResponse,
  PublishRequest,
  PublishResponse,
  PublishToTerminalsRequest,
  PublishToTerminalsResponse,
  type TerminalEvent,
} from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import type { ServerWritableStream } from '@grpc/grpc-js'
import { MOST_TERMINALS_PER_ACCOUNT } from '../runtime/config.ts'
import { assertMayActForDevice } from '../runtime/device-access.ts'
import { PermissionDeniedError, quote, UnavailableError } from '../runtime/errors.ts'
import { callOf, derivedRequestId, idempotent } from '../runtime/idempotency.ts'
import { registerRentalBoundary } from '../runtime/rental-boundary.ts'
import { rentalBeganAt } from './store/repository.ts'
import { terminalEnrollment } from '../runtime/mesh-calls.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import type { Handlers, RpcContext } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { awaitDrain, resubscribeDelayMs, writeWithBackpressure } from '../runtime/streams.ts'
import { StreamQuota } from '../runtime/stream-quota.ts'
import { type Format, MAX_SEQUENCE, UUID_PATTERN, validate } from '../runtime/validation.ts'
import * as channels from './channels.ts'
import * as pipe from './pipe.ts'
import type { ChannelRow, EventRow } from './store/repository.ts'
import type { EventsDatabase } from './store/tables.ts'
import { CATCH_UP_BATCH, type Shared } from './workers.ts'

const CHANNEL_ID: Format = { pattern: UUID_PATTERN, description: 'must be a channel id returned by OpenChannel' }
const AFTER_SEQUENCE = { min: 0n, max: MAX_SEQUENCE }
/** Notify and ListEvents serve a device's instance and terminals: the previous renter's events are not theirs. */
const CURRENT_RENTAL = { currentRentalOnly: true } as const

/** What every stored event says, whichever stream it is on. */
const eventFields = (row: EventRow) => ({
  sequence: row.sequence,
  kind: pipe.kindFromName(row.kind),
  subjectId: row.subject_id,
  createTime: row.created_at,
  traceParent: row.trace_parent,
})
const toEvent = (row: EventRow): Event => ({ deviceId: row.device_id, ...eventFields(row) })
const toTerminalEvent = (row: EventRow): TerminalEvent => ({ terminalId: pipe.terminalOfStream(row.device_id), ...eventFields(row) })

/** One reply object per stored row: subscribers sharing a read share the reply, encoded once. */
function replyPerRow<Reply extends object>(build: (row: EventRow) => Reply): (row: EventRow) => Reply {
  const replies = new WeakMap<EventRow, Reply>()
  return (row) => {
    let reply = replies.get(row)
    if (!reply) replies.set(row, (reply = build(row)))
    return reply
  }
}
const toNotifyResponse = replyPerRow((row): NotifyResponse => ({ event: toEvent(row) }))
const toFollowTerminalResponse = replyPerRow((row): FollowTerminalResponse => ({ event: toTerminalEvent(row) }))

/** The kinds terminals' own streams carry. */
const TERMINAL_KINDS: readonly EventKind[] = [
  EventKind.EVENT_KIND_PAYMENT_PUSHED,
  EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE,
  EventKind.EVENT_KIND_TERMINAL_REMOVED,
  EventKind.EVENT_KIND_OFFLINE_CODE_REDEEMED,
]
const REMOVED = pipe.kindName(EventKind.EVENT_KIND_TERMINAL_REMOVED)
/** An account's terminals, however many it may have (CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT). */
const MAX_TERMINALS_PER_PUBLISH = MOST_TERMINALS_PER_ACCOUNT

interface FollowOptions<Res> {
  /** The stream's key (pipe.ts). */
  readonly stream: string
  readonly afterSequence: bigint
  /** The device's instance and terminals follow only its current rental; a terminal its own stream only since its enrolment. */
  readonly scope?: pipe.StreamScope
  readonly toResponse: (row: EventRow) => Res
  /** A terminal following a device's stream through a channel, and how to check it is still open. */
  readonly channel?: { readonly terminalId: string; assertOpen(): Promise<void> }
  /** An error to end the stream with after this event was delivered; undefined to go on. */
  readonly endsAfter?: (row: EventRow) => Error | undefined
}

const toChannel = (row: ChannelRow): Channel => ({
  channelId: row.channel_id,
  deviceId: row.device_id,
  terminalId: row.terminal_id,
  state: row.state === 'open' ? ChannelState.CHANNEL_STATE_OPEN : ChannelState.CHANNEL_STATE_CLOSED,
  openTime: row.opened_at,
  closeTime: row.closed_at ?? undefined,
})

export function createHandlers(deps: ServiceDeps<EventsDatabase>, { hub }: Shared): Handlers<typeof InstanceEventsServiceService> {
  const db = deps.db
  // An instance's stored answers (Publish) are its device's current rental's only.
  registerRentalBoundary(db, (caller, eb) => (caller.role === 'instance' ? rentalBeganAt(eb, caller.id) : undefined))
  // Expired events are purged by the service's retention (retention.ts), with the rest.
  const { stallMs, maxStreamsPerCaller } = deps.config.events
  const streamQuota = new StreamQuota(maxStreamsPerCaller)
  const isChannelOpen = (deviceId: string, terminalId: string) => channels.isChannelOpen(db, deviceId, terminalId)

  /**
   * Serves one stream (a device's or a terminal's) to one subscriber until it cancels or fails:
   * stored events after its sequence, then live ones, in order, none twice, with backpressure and
   * the cut-off of a stalled subscriber. While the loop waits up to date (parked), the hub writes
   * new events to the stream directly. A caller holds at most maxStreamsPerCaller at once.
   */
  const follow = async <Res>(ctx: RpcContext, stream: ServerWritableStream<unknown, Res>, o: FollowOptions<Res>): Promise<void> => {
    const release = streamQuota.admit(ctx.caller)
    try {
      await followAdmitted(ctx, stream, o)
    } finally {
      release()
    }
  }
  const followAdmitted = async <Res>(ctx: RpcContext, stream: ServerWritableStream<unknown, Res>, o: FollowOptions<Res>): Promise<void> => {
    const { from: afterSequence, rental } = await pipe.assertResumable(db, o.stream, o.afterSequence, o.scope)
    // Events of another rental of the device are passed over, never written (rental-boundary.ts).
    const belongs = pipe.belongsTo(rental)
    /** Set when an event that ends the stream was written: the loop ends it with this. */
    let ending: Error | undefined
    const write = (row: EventRow): boolean => {
      if (!belongs(row)) return true
      const more = stream.write(o.toResponse(row))
      ending ??= o.endsAfter?.(row)
      // Nothing more from the hub: the loop takes over and ends the stream.
      return more && ending === undefined
    }
    // Subscribe before the first read: an event stored meanwhile marks the subscription dirty.
    const subscription = hub.subscribe(o.stream, o.channel?.terminalId, afterSequence, write, ctx.signal)
    const resumeHint = (): string => `resume with after_sequence=${subscription.cursor}`
    try {
      // This loop catches up and handles what the hub leaves to it.
      while (!ctx.signal.aborted) {
        if (hub.closing) throw new UnavailableError('SHUTTING_DOWN', `this replica is shutting down; ${resumeHint()}`, resubscribeDelayMs())
        if (subscription.needsDrain) {
          subscription.needsDrain = false
          await awaitDrain(stream, stallMs, ctx.signal, resumeHint())
        }
        if (ending) throw ending
        subscription.dirty = false
        if (subscription.recheckChannel) {
          subscription.recheckChannel = false
          await o.channel?.assertOpen()
        }
        const rows = await pipe.readEvents(db, o.stream, subscription.cursor, CATCH_UP_BATCH)
        for (const row of rows) {
          if (ctx.signal.aborted) return
          if (!belongs(row)) {
            subscription.cursor = row.sequence
            continue
          }
          await writeWithBackpressure(stream, o.toResponse(row), stallMs, ctx.signal, resumeHint())
          subscription.cursor = row.sequence
          const end = o.endsAfter?.(row)
          if (end) throw end
        }
        if (rows.length === CATCH_UP_BATCH) {
          await yieldToEventLoop() // a long catch-up must not starve other calls
          continue
        }
        await subscription.wait()
      }
    } finally {
      subscription.close()
    }
  }
  return {
    openChannel: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').id(request.terminalId, 'terminal_id'))
      return idempotent(db, callOf(ctx, request, OpenChannelRequest, OpenChannelResponse), async (trx) => ({
        channel: toChannel(await channels.openChannel(trx, request.deviceId, request.terminalId)),
      }))
    },

    closeChannel: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).format(request.channelId, 'channel_id', CHANNEL_ID))
      return idempotent(db, callOf(ctx, request, CloseChannelRequest, CloseChannelResponse), async (trx) => ({
        channel: toChannel(await channels.closeChannel(trx, request.channelId)),
      }))
    },

    closeDeviceChannels: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .check(request.openedBefore !== undefined, 'opened_before', 'is required'),
      )
      return idempotent(db, callOf(ctx, request, CloseDeviceChannelsRequest, CloseDeviceChannelsResponse), async (trx) => ({
        channels: (await channels.closeDeviceChannels(trx, request.deviceId, request.openedBefore!)).map(toChannel),
      }))
    },

    listChannels: async (request, ctx) => {
      validate((v) => v.id(request.terminalId, 'terminal_id', { optional: true }).id(request.deviceId, 'device_id', { optional: true }).page(request))
      // A terminal sees only its own channels.
      let terminalId = request.terminalId
      if (ctx.caller.role === 'terminal') {
        if (terminalId !== '' && terminalId !== ctx.caller.id) {
          throw new PermissionDeniedError('NOT_OWN_TERMINAL', `terminal ${ctx.caller.id} may list only its own channels, not terminal_id ${quote(terminalId)}`)
        }
        terminalId = ctx.caller.id
      }
      // A terminal's closed channels from before its latest enrolment ended are not its own now (rental-boundary.ts).
      const enrolmentStream = ctx.caller.role === 'terminal' ? pipe.terminalStream(ctx.caller.id) : undefined
      const filter = { terminalId, deviceId: request.deviceId, includeClosed: request.includeClosed, enrolmentStream }
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter,
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => channels.listChannels(db, filter, after, limit),
        cursorOf: (row) => row.seq,
      })
      return { channels: items.map(toChannel), nextPageToken }
    },

    checkChannel: async (request) => {
      validate((v) => v.id(request.deviceId, 'device_id').id(request.terminalId, 'terminal_id'))
      const open = await channels.findOpenChannel(db, request.deviceId, request.terminalId)
      return { open: open !== undefined, channelId: open?.channel_id ?? '' }
    },

    publish: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .check(
            request.kind !== EventKind.EVENT_KIND_UNSPECIFIED && EventKind[request.kind] !== undefined && request.kind !== EventKind.UNRECOGNIZED,
            'kind',
            'must be one of the EventKind values',
          )
          .opaqueId(request.subjectId, 'subject_id')
          .timestamp(request.subjectCreateTime, 'subject_create_time'),
      )
      await assertMayActForDevice(ctx.caller, request.deviceId, isChannelOpen)
      pipe.assertMayPublish(ctx.caller, request.kind)
      return idempotent(db, callOf(ctx, request, PublishRequest, PublishResponse), async (trx) => ({
        event: toEvent(
          await pipe.publish(
            db,
            { deviceId: request.deviceId, kind: request.kind, subjectId: request.subjectId, publisher: ctx.caller, subjectCreatedAt: request.subjectCreateTime },
            trx,
          ),
        ),
      }))
    },

    notify: async (request, ctx, stream) => {
      validate((v) => v.id(request.deviceId, 'device_id').integer(request.afterSequence, 'after_sequence', AFTER_SEQUENCE))
      await assertMayActForDevice(ctx.caller, request.deviceId, isChannelOpen)
      await follow(ctx, stream, {
        stream: pipe.deviceStream(request.deviceId),
        afterSequence: request.afterSequence,
        scope: CURRENT_RENTAL,
        toResponse: toNotifyResponse,
        // A terminal follows through its channel: checked once when subscribing; again only when a close (or a lost notification) says so.
        channel:
          ctx.caller.role === 'terminal'
            ? {
                terminalId: ctx.caller.id,
                assertOpen: async () => {
                  if (!(await isChannelOpen(request.deviceId, ctx.caller.id))) {
                    throw new PermissionDeniedError('CHANNEL_CLOSED', `the channel between terminal ${ctx.caller.id} and device ${request.deviceId} was closed`)
                  }
                },
              }
            : undefined,
      })
    },

    followTerminal: async (request, ctx, stream) => {
      validate((v) => v.integer(request.afterSequence, 'after_sequence', AFTER_SEQUENCE))
      // The stream is the caller's own, by its certificate alone; only while it is enrolled.
      const enrollment = await terminalEnrollment(deps.peers, ctx.caller.id, { seen: true, signal: ctx.signal })
      if (!enrollment) throw new PermissionDeniedError('NOT_ENROLLED', `terminal ${ctx.caller.id} is not enrolled in a cloud account; EnrollTerminal first`)
      const enrollmentId = enrollment.terminal.enrollmentId
      await follow(ctx, stream, {
        stream: pipe.terminalStream(ctx.caller.id),
        afterSequence: request.afterSequence,
        // An earlier enrolment's pushes and removal are not this one's (rental-boundary.ts).
        scope: { since: enrollment.terminal.enrollTime },
        toResponse: toFollowTerminalResponse,
        // Its removal (stored on the stream, so no replica misses it) is delivered, then ends the stream.
        // A TERMINAL_REMOVED of an earlier enrolment is only history.
        endsAfter: (row) =>
          row.kind === REMOVED && row.subject_id === enrollmentId
            ? new PermissionDeniedError('TERMINAL_REMOVED', `terminal ${ctx.caller.id} was removed from its cloud account; its stream has ended`)
            : undefined,
      })
    },

    publishToTerminals: async (request, ctx) => {
      validate((v) => {
        v.requestId(request.requestId)
          .check(request.terminalIds.length >= 1 && request.terminalIds.length <= MAX_TERMINALS_PER_PUBLISH, 'terminal_ids', `must name 1-${MAX_TERMINALS_PER_PUBLISH} terminals`)
          .check(new Set(request.terminalIds).size === request.terminalIds.length, 'terminal_ids', 'must not name a terminal twice')
        request.terminalIds.slice(0, MAX_TERMINALS_PER_PUBLISH + 1).forEach((id, index) => v.id(id, `terminal_ids[${index}]`))
        v.check(TERMINAL_KINDS.includes(request.kind), 'kind', 'must be PAYMENT_PUSHED, ORDER_CLAIMED_ELSEWHERE, TERMINAL_REMOVED or OFFLINE_CODE_REDEEMED')
          .opaqueId(request.subjectId, 'subject_id')
          .timestamp(request.occurTime, 'occur_time')
      })
      pipe.assertMayPublishToTerminals(ctx.caller, request.kind)
      // One stored event per terminal and request id: a retry naming other terminals too stores nothing twice.
      const events: TerminalEvent[] = []
      for (const terminalId of request.terminalIds) {
        const one = { requestId: derivedRequestId(request.requestId, terminalId), terminalIds: [terminalId], kind: request.kind, subjectId: request.subjectId, occurTime: request.occurTime }
        const reply = await idempotent(db, callOf(ctx, one, PublishToTerminalsRequest, PublishToTerminalsResponse), async (trx) => ({
          events: [
            toTerminalEvent(
              await pipe.publishToTerminal(trx, { terminalId, kind: request.kind, subjectId: request.subjectId, publisher: ctx.caller, occurredAt: request.occurTime }),
            ),
          ],
        }))
        events.push(...reply.events)
      }
      return { events }
    },

    listEvents: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').integer(request.afterSequence, 'after_sequence', AFTER_SEQUENCE).page(request))
      await assertMayActForDevice(ctx.caller, request.deviceId, isChannelOpen)
      // The first page starts after after_sequence, which must still be retained; later pages after their token's cursor.
      const from = request.pageToken === '' ? (await pipe.assertResumable(db, request.deviceId, request.afterSequence, CURRENT_RENTAL)).from : request.afterSequence
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { deviceId: request.deviceId, after: request.afterSequence },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => pipe.readEvents(db, request.deviceId, after ?? from, limit, 'current'),
        cursorOf: (row) => row.sequence,
      })
      return { events: items.map(toEvent), nextPageToken }
    },
  }
}
