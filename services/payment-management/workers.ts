// PaymentManagement's background work, and the part of it its handlers use: the outbox (hand-offs
// to platforms, AppService, the pipe and the push relay), the sweep that expires orders past
// their deadline, and the retention purge.
import { status as Status } from '@grpc/grpc-js'
import { TransactionState } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { UnavailableError } from '../runtime/errors.ts'
import { createOutbox, type Outbox, outboxSettings } from '../runtime/outbox.ts'
import { RelayedError } from '../runtime/peer-calls.ts'
import { retentionWorker } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { sweeper, type Worker } from '../runtime/workers.ts'
import { handOffs } from './hand-offs.ts'
import * as orders from './orders.ts'
import { platformTransaction } from './peers.ts'
import { purges } from './retention.ts'
import type { OrderRow } from './store/repository.ts'
import type { PaymentDatabase } from './store/tables.ts'

type Deps = ServiceDeps<PaymentDatabase>

/** Built once per start; handlers kick the outbox after a commit. */
export interface Shared {
  readonly outbox: Outbox
}

export const shared = (deps: Deps): Shared => ({
  outbox: createOutbox({ db: deps.db, tracer: deps.tracer, log: deps.log, ...outboxSettings(deps.config), handlers: handOffs(deps.db, deps.peers) }),
})

export const workers = (deps: Deps, { outbox }: Shared): Worker[] => [outbox, orderExpiry(deps, outbox), retentionWorker(deps, purges(deps))]

export const introspect = ({ outbox }: Shared) => ({ outbox_dead_letters: outbox.deadLetters() })

/** Expires unpaid orders past their deadline, a few times per order TTL (orders.expireDue). */
function orderExpiry(deps: Deps, outbox: Outbox): Worker {
  const settings = deps.config.payment
  const sweepMs = Math.min(Math.max(settings.orderTtlMs / 4, 250), 5_000)
  /** Before an awaiting order expires: has its platform been paid (the report may still be on its way)? */
  const prepayAtPlatform = async (order: OrderRow): Promise<orders.PrepayVerdict> => {
    try {
      const transaction = await platformTransaction(deps.peers, order.platform_id!, order.serial_number!)
      const state = transaction?.state
      return state === TransactionState.TRANSACTION_STATE_SUCCEEDED || state === TransactionState.TRANSACTION_STATE_REFUNDED ? 'paid' : 'unpaid'
    } catch (error) {
      if (error instanceof RelayedError && error.code === Status.NOT_FOUND) return 'unpaid' // the platform never made it
      if (!(error instanceof UnavailableError)) deps.log.warn({ err: error, order_id: order.order_id }, 'asking the platform about an order past its deadline failed')
      return 'unknown'
    }
  }
  return sweeper({
    name: 'order-expiry',
    intervalMs: sweepMs,
    log: deps.log,
    run: async () => {
      const { expired, deferred } = await orders.expireDue(deps.db, prepayAtPlatform, { paidMs: settings.retryMaxMs, unknownMs: sweepMs }, deps.clock.now())
      for (const { order, verdict } of deferred) {
        deps.log.info(
          { order_id: order.order_id, platform_id: order.platform_id, serial_number: order.serial_number },
          verdict === 'paid'
            ? 'order past its deadline is paid at its platform: not expired; waiting for the payment result'
            : 'order past its deadline: its platform could not be asked whether it was paid; not expired yet',
        )
      }
      if (expired > 0) outbox.kick()
    },
  })
}
