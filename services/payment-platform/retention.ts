// What this service forgets, and after how long (config.retention; runtime/retention.ts): answered
// request ids, delivered outbox rows, and the digests of spent sealed credentials once no sealing
// key they could have been made with is accepted any more (a replay cannot open then); ended
// offline credentials with their redemptions, and payee keys, once past the offline window. The
// same pass ends offline credentials past their validity (their rest goes back to the payers):
// not a deletion, but the same bounded, replica-safe batches.
// Transactions and ledger entries are never purged: they are the platform's financial record.
import { deliveredOutboxPurge, idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { expiredCredentialsSweep } from './offline-handlers.ts'
import * as offlineStore from './store/offline-repository.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

export function purges({ db, config, sealer }: Pick<ServiceDeps<PlatformDatabase>, 'db' | 'config' | 'sealer'>): Purge[] {
  // A key is accepted for rotation + grace after it was made; a blob is made while its key is accepted.
  const offline = config.payment.offline
  const sealedWindowMs = 2 * (config.payment.sealingKeyRotationMs + config.payment.sealingKeyGraceMs)
  return [
    idempotencyPurge(db, config.retention.idempotencyMs),
    deliveredOutboxPurge(db, config.retention.outboxMs),
    { name: 'sealed_blobs', windowMs: sealedWindowMs, deleteBatch: (cutoff, limit) => store.deleteSealedBlobsBefore(db, cutoff, limit) },
    // Ends (not deletes) credentials past their window: the cutoff is now.
    { name: 'offline_credentials_expired', windowMs: 0, deleteBatch: expiredCredentialsSweep(db, sealer) },
    { name: 'offline_credentials', windowMs: offline.retentionMs, deleteBatch: (cutoff, limit) => offlineStore.deleteCredentialsEndedBefore(db, cutoff, limit) },
    // A payee key is accepted for rotation + grace after it was made; kept the offline window longer.
    {
      name: 'payee_keys',
      windowMs: offline.payeeKeyRotationMs + offline.payeeKeyGraceMs + offline.retentionMs,
      deleteBatch: (cutoff, limit) => offlineStore.deletePayeeKeysBefore(db, cutoff, limit),
    },
  ]
}
