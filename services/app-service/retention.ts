// What AppService forgets, and after how long (config.retention; runtime/retention.ts).
import { idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as store from './store/repository.ts'
import type { AppDatabase } from './store/tables.ts'

export function purges({ db, config }: Pick<ServiceDeps<AppDatabase>, 'db' | 'config'>): Purge[] {
  const { retention } = config
  return [
    idempotencyPurge(db, retention.idempotencyMs),
    { name: 'app_sessions', windowMs: retention.sessionMs, deleteBatch: (before, limit) => store.deleteSessionsExpiredBefore(db, before, limit) },
    // At least the longest login token or session TTL (config.ts checks): no session can be opened for an ended assignment meanwhile.
    { name: 'device_assignments', windowMs: retention.tombstoneMs, deleteBatch: (before, limit) => store.deleteAssignmentsEndedBefore(db, before, limit) },
  ]
}
