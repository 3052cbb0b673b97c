// What the development push relay forgets, and after how long (config.retention): answered
// request ids, and the wakes it recorded (kept as long as delivered outbox rows are).
import { idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as store from './store/repository.ts'
import type { PushRelayDatabase } from './store/tables.ts'

export function purges({ db, config }: Pick<ServiceDeps<PushRelayDatabase>, 'db' | 'config'>): Purge[] {
  return [
    idempotencyPurge(db, config.retention.idempotencyMs),
    { name: 'wakes', windowMs: config.retention.outboxMs, deleteBatch: (before, limit) => store.deleteWakesBefore(db, before, limit) },
  ]
}
