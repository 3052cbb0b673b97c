// What AccountManagement forgets, and after how long (config.retention; runtime/retention.ts).
// Tokens go before logins: a login is kept as long as its token is.
import { rateLimitPurge } from '../runtime/rate-limit.ts'
import { deliveredOutboxPurge, idempotencyPurge, type Purge } from '../runtime/retention.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

export function purges({ db, config }: Pick<ServiceDeps<AccountDatabase>, 'db' | 'config'>): Purge[] {
  const { retention, login } = config
  return [
    idempotencyPurge(db, retention.idempotencyMs),
    deliveredOutboxPurge(db, retention.outboxMs),
    { name: 'login_tokens', windowMs: retention.loginMs, deleteBatch: (before, limit) => store.deleteLoginTokensExpiredBefore(db, before, limit) },
    { name: 'logins', windowMs: retention.loginMs, deleteBatch: (before, limit) => store.deleteLoginsExpiredBefore(db, before, limit) },
    // Failures older than the lock window are forgotten by the rules already.
    { name: 'login_failures', windowMs: login.lockMs, deleteBatch: (before, limit) => store.deleteLoginFailuresBefore(db, before, limit) },
    rateLimitPurge(db),
  ]
}
