// InstanceEvents' background work, and the part of it its handlers use: the subscriber hub (LISTEN
// for appends and channel changes, fan-out to parked subscribers), its safety-net sweep, and the
// retention purge (expired events, closed channels).
import { retentionWorker } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { sweeper, type Worker } from '../runtime/workers.ts'
import * as pipe from './pipe.ts'
import { purges } from './retention.ts'
import type { EventsDatabase } from './store/tables.ts'
import { SubscriberHub } from './subscribers.ts'

type Deps = ServiceDeps<EventsDatabase>

/** Events read from the store per round trip while a subscriber catches up. */
export const CATCH_UP_BATCH = 100

/** Built once per start; stream handlers subscribe to the hub. */
export interface Shared {
  readonly hub: SubscriberHub
}

export function shared(deps: Deps): Shared {
  const hub = new SubscriberHub((deviceId, after) => pipe.readEvents(deps.db, deviceId, after, CATCH_UP_BATCH), CATCH_UP_BATCH)
  hub.servesAppendsOf(deps.db)
  return { hub }
}

/** The sweep first and the hub after it, so on stop the hub closes first and a sweep under way ends early. */
export const workers = (deps: Deps, { hub }: Shared): Worker[] => [
  sweeper({ name: 'subscriber-sweep', intervalMs: deps.config.events.pollMs, log: deps.log, run: () => hub.sweep() }),
  hubWorker(deps, hub),
  retentionWorker(deps, purges(deps)),
]

export const introspect = ({ hub }: Shared) => ({ subscribers: hub.count() })

/** LISTENs for the hub; without the database, subscribers are handed back to their own loops. */
function hubWorker(deps: Deps, hub: SubscriberHub): Worker {
  let unwatchDatabase: (() => void) | undefined
  return {
    name: 'subscriber-hub',
    async start() {
      // Streams cannot be served without the database: each subscriber's loop re-reads, fails, and
      // its stream ends UNAVAILABLE, so the client resumes from its sequence (here or on a replica).
      unwatchDatabase = deps.onDatabaseAvailability((available) => available || hub.notifyAll())
      await hub.start(deps.listen).catch((error: unknown) => deps.log.error({ err: error }, 'cannot LISTEN for events; subscribers fall back to polling'))
    },
    async stop() {
      unwatchDatabase?.()
      await hub.stop()
    },
  }
}
