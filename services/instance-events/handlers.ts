// InstanceEventsService handlers: validate the request, apply the rules, map rows to replies.
import type { Kysely } from 'kysely'
import {
  type Channel,
  ChannelState,
  CloseChannelRequest,
  CloseChannelResponse,
  type InstanceEventsServiceService,
  OpenChannelRequest,
  OpenChannelResponse,
} from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { PermissionDeniedError } from '../runtime/errors.ts'
import { idempotent } from '../runtime/idempotency.ts'
import { decodePageToken, page, pageSize } from '../runtime/pagination.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { validate } from '../runtime/validation.ts'
import * as channels from './channels.ts'
import type { ChannelRow } from './store/repository.ts'
import type { EventsDatabase } from './store/tables.ts'

const toChannel = (row: ChannelRow): Channel => ({
  channelId: row.channel_id,
  deviceId: row.device_id,
  terminalId: row.terminal_id,
  state: row.state === 'open' ? ChannelState.CHANNEL_STATE_OPEN : ChannelState.CHANNEL_STATE_CLOSED,
  openTime: row.opened_at,
  closeTime: row.closed_at ?? undefined,
})

export function createHandlers(deps: ServiceDeps): Handlers<typeof InstanceEventsServiceService> {
  const db = deps.db as Kysely<EventsDatabase>
  return {
    openChannel: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').id(request.terminalId, 'terminal_id'))
      return idempotent(
        db,
        { caller: ctx.caller, method: ctx.method, requestId: request.requestId, request, requestCodec: OpenChannelRequest, responseCodec: OpenChannelResponse },
        async (trx) => ({ channel: toChannel(await channels.openChannel(trx, request.deviceId, request.terminalId)) }),
      )
    },

    closeChannel: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).check(request.channelId !== '', 'channel_id', 'is required'))
      return idempotent(
        db,
        { caller: ctx.caller, method: ctx.method, requestId: request.requestId, request, requestCodec: CloseChannelRequest, responseCodec: CloseChannelResponse },
        async (trx) => ({ channel: toChannel(await channels.closeChannel(trx, request.channelId)) }),
      )
    },

    listChannels: async (request, ctx) => {
      validate((v) => {
        if (request.terminalId !== '') v.id(request.terminalId, 'terminal_id')
        if (request.deviceId !== '') v.id(request.deviceId, 'device_id')
      })
      // A terminal sees only its own channels.
      let terminalId = request.terminalId
      if (ctx.caller.role === 'terminal') {
        if (terminalId !== '' && terminalId !== ctx.caller.id) {
          throw new PermissionDeniedError('NOT_OWN_TERMINAL', `terminal ${ctx.caller.id} may list only its own channels, not terminal_id ${JSON.stringify(terminalId)}`)
        }
        terminalId = ctx.caller.id
      }
      const filter = { terminalId, deviceId: request.deviceId, includeClosed: request.includeClosed }
      const size = pageSize(request.pageSize)
      const cursor = decodePageToken(request.pageToken, filter)
      const rows = await channels.listChannels(db, filter, cursor === undefined ? undefined : BigInt(cursor), size + 1)
      const { items, nextPageToken } = page(rows, size, (row) => row.seq.toString(), filter)
      return { channels: items.map(toChannel), nextPageToken }
    },

    checkChannel: async (request) => {
      validate((v) => v.id(request.deviceId, 'device_id').id(request.terminalId, 'terminal_id'))
      const open = await channels.findOpenChannel(db, request.deviceId, request.terminalId)
      return { open: open !== undefined, channelId: open?.channel_id ?? '' }
    },

    publish: notImplemented('Publish'),
    notify: notImplemented('Notify'),
    listEvents: notImplemented('ListEvents'),
  }
}
