// What this service forgets, and after how long (config.retention; runtime/retention.ts): answered
// request ids and delivered outbox rows. Orders are kept: with the platforms' transactions they are the payment record.
import { deliveredOutboxPurge, idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import type { PaymentDatabase } from './store/tables.ts'

export function purges({ db, config }: Pick<ServiceDeps<PaymentDatabase>, 'db' | 'config'>): Purge[] {
  return [idempotencyPurge(db, config.retention.idempotencyMs), deliveredOutboxPurge(db, config.retention.outboxMs)]
}
