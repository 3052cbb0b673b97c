// Rate limits held in the database (PGlite, or PostgreSQL when DATABASE_URL is set): two
// replicas' limiters over one database take from one bucket, so together they allow the limit,
// not twice it. Time is the `now` each call is given.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import { accountManagement } from '../../services/account-management/server.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { ResourceExhaustedError } from '../../services/runtime/errors.ts'
import { SharedRateLimiter } from '../../services/runtime/rate-limit.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

let db: Kysely<AccountDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<AccountDatabase>(accountManagement))
})
after(async () => close?.())

/** How many of these takes were allowed; every refusal is RATE_LIMITED with its wait. */
async function allowed(takes: Promise<void>[], waits: number[] = []): Promise<number> {
  const outcomes = await Promise.allSettled(takes)
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') continue
    assert.ok(outcome.reason instanceof ResourceExhaustedError, String(outcome.reason))
    assert.equal(outcome.reason.reason, 'RATE_LIMITED')
    waits.push(outcome.reason.retryAfterMs!)
  }
  return outcomes.filter((o) => o.status === 'fulfilled').length
}

test(`two replicas sharing the database together allow the limit once, not once each (${DATABASE_KIND})`, async () => {
  // Two replicas of AccountManagement: each its own limiter, the same table.
  const replicas = [new SharedRateLimiter(db, 'GetLogin', 2, 5), new SharedRateLimiter(db, 'GetLogin', 2, 5)]
  const t0 = new Date('2030-01-01T00:00:00.000Z')
  const at = (ms: number) => new Date(t0.getTime() + ms)
  const burst = (n: number, now: Date, subject = 'instance/dev-1') => Array.from({ length: n }, (_, i) => replicas[i % 2]!.take(subject, 'GetLogin', now))

  const waits: number[] = []
  assert.equal(await allowed(burst(20, t0), waits), 5, 'a burst of 5 across both replicas, concurrently')
  assert.deepEqual(new Set(waits), new Set([500]), 'refusals say when the next token comes (2 per second)')
  assert.equal(await allowed(burst(6, at(1000))), 2, 'one second later: 2 more')
  assert.equal(await allowed(burst(4, at(1000), 'instance/dev-2')), 4, 'another caller has its own bucket')
  assert.equal(await allowed(burst(2, at(-5000))), 0, 'a replica whose clock is behind gets no tokens from it')
  assert.equal(await allowed(burst(3, at(1500))), 1, 'and did not move the bucket back in time')
  assert.equal(await allowed(burst(10, at(60_000))), 5, 'an idle bucket refills to its burst, no further')
  const rows = await db.selectFrom('rate_limits').selectAll().orderBy('subject').execute()
  assert.deepEqual(
    rows.map((r) => [r.name, r.subject]),
    [
      ['GetLogin', 'instance/dev-1'],
      ['GetLogin', 'instance/dev-2'],
    ],
  )
})
