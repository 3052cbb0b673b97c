// What this service forgets, and after how long (config.retention; runtime/retention.ts): answered
// request ids, delivered outbox rows, and the digests of spent sealed credentials once no sealing
// key they could have been made with is accepted any more (a replay cannot open then).
// Transactions and ledger entries are never purged: they are the platform's financial record.
import { deliveredOutboxPurge, idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { Kysely } from 'kysely'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

export function purges({ db, config }: Pick<ServiceDeps, 'db' | 'config'>): Purge[] {
  const platform = db as Kysely<PlatformDatabase>
  // A key is accepted for rotation + grace after it was made; a blob is made while its key is accepted.
  const sealedWindowMs = 2 * (config.payment.sealingKeyRotationMs + config.payment.sealingKeyGraceMs)
  return [
    idempotencyPurge(db, config.retention.idempotencyMs),
    deliveredOutboxPurge(db, config.retention.outboxMs),
    { name: 'sealed_blobs', windowMs: sealedWindowMs, deleteBatch: (cutoff, limit) => store.deleteSealedBlobsBefore(platform, cutoff, limit) },
  ]
}
