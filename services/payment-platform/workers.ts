// PaymentPlatform's background work, and the part of it its handlers use: the outbox (payment
// results and offline redemptions to PaymentManagement) and the retention purge (which also ends
// offline credentials past their validity).
import { createOutbox, type Outbox, outboxSettings } from '../runtime/outbox.ts'
import { retentionWorker } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import type { Worker } from '../runtime/workers.ts'
import { OFFLINE_REDEEMED_TOPIC, offlineRedeemedSender, PAYMENT_RESULT_TOPIC, paymentResultSender } from './notifications.ts'
import { purges } from './retention.ts'
import type { PlatformDatabase } from './store/tables.ts'

/** Built once per start; handlers kick the outbox after a commit. */
export interface Shared {
  readonly outbox: Outbox
}

export const shared = (deps: ServiceDeps<PlatformDatabase>): Shared => ({
  outbox: createOutbox({
    db: deps.db,
    tracer: deps.tracer,
    log: deps.log,
    ...outboxSettings(deps.config),
    handlers: { [PAYMENT_RESULT_TOPIC]: paymentResultSender(deps.peers), [OFFLINE_REDEEMED_TOPIC]: offlineRedeemedSender(deps.peers) },
  }),
})

export const workers = (deps: ServiceDeps<PlatformDatabase>, { outbox }: Shared): Worker[] => [outbox, retentionWorker(deps, purges(deps))]

export const introspect = ({ outbox }: Shared) => ({ outbox_dead_letters: outbox.deadLetters() })
