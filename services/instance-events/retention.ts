// What InstanceEvents forgets, and after how long (config.retention, config.events; runtime/retention.ts).
import type { Kysely } from 'kysely'
import { idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as store from './store/repository.ts'
import type { EventsDatabase } from './store/tables.ts'

/** Pipe events past CLOUDPAY_EVENT_RETENTION_MS; a subscriber resuming across them is told (pipe.assertResumable). */
export function eventsPurge(db: Kysely<EventsDatabase>, windowMs: number): Purge {
  return { name: 'events', windowMs, deleteBatch: (before, limit) => store.deleteEventsBefore(db, before, limit) }
}

export function purges({ db, config }: Pick<ServiceDeps<EventsDatabase>, 'db' | 'config'>): Purge[] {
  return [
    idempotencyPurge(db, config.retention.idempotencyMs),
    eventsPurge(db, config.events.retentionMs),
    { name: 'channels', windowMs: config.retention.channelMs, deleteBatch: (before, limit) => store.deleteChannelsClosedBefore(db, before, limit) },
  ]
}
