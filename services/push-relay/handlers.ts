// PushRelayService handlers (the development relay): each wake is recorded, once per request
// id, instead of being sent to a terminal OS vendor's push service.
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { type PushRelayServiceService, type Wake, WakeRequest, WakeResponse } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { callOf, idempotent } from '../runtime/idempotency.ts'
import { formatIdentity } from '../runtime/identity.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import type { Handlers } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { validate } from '../runtime/validation.ts'
import * as store from './store/repository.ts'
import type { PushRelayDatabase } from './store/tables.ts'

const PREFIX = 'EVENT_KIND_'
/** What a terminal may be woken for: the events its own stream carries. */
const WAKE_KINDS = [EventKind.EVENT_KIND_PAYMENT_PUSHED, EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE, EventKind.EVENT_KIND_TERMINAL_REMOVED]

const toWake = (row: store.WakeRow): Wake => ({
  wakeId: row.wake_id,
  terminalId: row.terminal_id,
  kind: EventKind[`${PREFIX}${row.kind}` as keyof typeof EventKind] ?? EventKind.UNRECOGNIZED,
  subjectId: row.subject_id,
  requestedBy: row.requested_by,
  createTime: row.created_at,
})

export function createHandlers(deps: ServiceDeps<PushRelayDatabase>): Handlers<typeof PushRelayServiceService> {
  const db = deps.db
  return {
    wake: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.terminalId, 'terminal_id')
          .oneOf(request.kind, 'kind', WAKE_KINDS, 'must be PAYMENT_PUSHED, ORDER_CLAIMED_ELSEWHERE or TERMINAL_REMOVED')
          .opaqueId(request.subjectId, 'subject_id'),
      )
      return idempotent(db, callOf(ctx, request, WakeRequest, WakeResponse), async (trx) => {
        const row = await store.insertWake(trx, {
          terminalId: request.terminalId,
          kind: EventKind[request.kind].slice(PREFIX.length),
          subjectId: request.subjectId,
          requestedBy: formatIdentity(ctx.caller),
        })
        ctx.log.info({ terminal_id: row.terminal_id, kind: row.kind, subject_id: row.subject_id }, 'wake recorded (development relay: nothing sent)')
        return { wake: toWake(row) }
      })
    },

    listWakes: async (request, ctx) => {
      validate((v) => v.id(request.terminalId, 'terminal_id', { optional: true }).page(request))
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { terminalId: request.terminalId },
        cursor: SEQUENCE_CURSOR,
        fetch: (before, limit) => store.listWakes(db, request.terminalId, before, limit),
        cursorOf: (row) => row.seq,
      })
      return { wakes: items.map(toWake), nextPageToken }
    },
  }
}
