// AccountManagement's background work, and the part of it its handlers use: the outbox (ends of
// assignments and enrolments for the services that granted something) and the retention purge.
import { createOutbox, type Outbox, outboxSettings } from '../runtime/outbox.ts'
import { retentionWorker } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import type { Worker } from '../runtime/workers.ts'
import { handOffs } from './hand-offs.ts'
import { purges } from './retention.ts'
import type { AccountDatabase } from './store/tables.ts'

/** Built once per start; handlers kick the outbox after a commit and wait on its deliveries. */
export interface Shared {
  readonly outbox: Outbox
}

export const shared = (deps: ServiceDeps<AccountDatabase>): Shared => ({
  outbox: createOutbox({ db: deps.db, tracer: deps.tracer, log: deps.log, ...outboxSettings(deps.config), handlers: handOffs(deps.peers) }),
})

export const workers = (deps: ServiceDeps<AccountDatabase>, { outbox }: Shared): Worker[] => [outbox, retentionWorker(deps, purges(deps))]

export const introspect = ({ outbox }: Shared) => ({ outbox_dead_letters: outbox.deadLetters() })
