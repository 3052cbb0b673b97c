// Retention on PGlite, or on PostgreSQL when DATABASE_URL is set: each service's purge deletes
// only finished rows past their window, in bounded statements, and never work in progress (an
// unanswered request id, an undelivered outbox row, a live login, token, session or channel).
// Time is the `now` handed to the purge; rows are written with their own times.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import type { Kysely } from 'kysely'
import { RegisterCloudAccountRequest, RegisterCloudAccountResponse } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { purges as accountPurges } from '../../services/account-management/retention.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { purges as appPurges } from '../../services/app-service/retention.ts'
import type { AppDatabase } from '../../services/app-service/store/tables.ts'
import { purges as eventPurges } from '../../services/instance-events/retention.ts'
import type { EventsDatabase } from '../../services/instance-events/store/tables.ts'
import { purges as paymentPurges } from '../../services/payment-management/retention.ts'
import type { PaymentDatabase } from '../../services/payment-management/store/tables.ts'
import { purges as platformPurges } from '../../services/payment-platform/retention.ts'
import { ALL_SERVICES } from '../../services/registry.ts'
import { ConfigError, loadConfig } from '../../services/runtime/config.ts'
import { forSchema, migrateSchema, type SharedDatabase } from '../../services/runtime/database.ts'
import { callOf, idempotent, replayOf } from '../../services/runtime/idempotency.ts'
import { enqueue } from '../../services/runtime/outbox.ts'
import { idempotencyPurge, purgeAll } from '../../services/runtime/retention.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, openFresh } from '../helpers/database.ts'

const TEST_SEALER = new Sealer(Buffer.alloc(32, 7))

const MINUTE = 60_000
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR
const config = loadConfig({})
const fingerprints = new Sealer(randomBytes(32))
const at = (base: Date, deltaMs: number): Date => new Date(base.getTime() + deltaMs)

let database: SharedDatabase
let close: () => Promise<void>
before(async () => {
  ;({ database, close } = await openFresh())
  for (const spec of ALL_SERVICES) await migrateSchema(database, spec.schema, spec.migrations)
})
after(async () => close?.())

test('the stated windows: request ids 24 h (as Stripe), outbox, logins and sessions 24 h, channels and tombstones 7 days', () => {
  assert.deepEqual(
    { ...config.retention },
    { intervalMs: MINUTE, idempotencyMs: DAY, outboxMs: DAY, loginMs: DAY, sessionMs: DAY, channelMs: 7 * DAY, tombstoneMs: 7 * DAY },
  )
  assert.equal(config.events.retentionMs, 7 * DAY)
  assert.equal(loadConfig({ CLOUDPAY_IDEMPOTENCY_RETENTION_MS: '3600000' }).retention.idempotencyMs, HOUR)
  assert.throws(
    () => loadConfig({ CLOUDPAY_TOMBSTONE_RETENTION_MS: String(HOUR) }),
    (error: unknown) => error instanceof ConfigError && /^CLOUDPAY_TOMBSTONE_RETENTION_MS must be at least the longest login token or session TTL/.test(error.message),
    'a tombstone shorter than a session could let a session of an ended assignment be opened',
  )
  assert.equal(loadConfig({ CLOUDPAY_TOMBSTONE_RETENTION_MS: String(HOUR), CLOUDPAY_SESSION_TTL_MS: String(HOUR) }).retention.tombstoneMs, HOUR)
  for (const [name, purges] of [
    ['account-management', accountPurges],
    ['app-service', appPurges],
    ['instance-events', eventPurges],
    ['payment-management', paymentPurges],
    ['payment-platform', platformPurges],
  ] as const) {
    const spec = ALL_SERVICES.find((s) => s.name === name)!
    const names = purges({ db: forSchema(database, spec.schema), config, sealer: TEST_SEALER }).map((p) => p.name)
    assert.ok(names.includes('idempotency_keys'), `${name} forgets answered request ids`)
  }
  const platform = platformPurges({ db: forSchema(database, 'payment_platform'), config, sealer: TEST_SEALER }).map((p) => p.name)
  assert.deepEqual(
    platform,
    ['idempotency_keys', 'outbox', 'sealed_blobs', 'offline_credentials_expired', 'offline_credentials', 'payee_keys'],
    "the platform's transactions and ledger are never purged",
  )
})

describe(`request ids (${DATABASE_KIND})`, () => {
  let db: Kysely<PaymentDatabase>
  const caller = { role: 'operator', id: 'op' } as const
  const call = (requestId: string) => callOf({ caller, method: 'test/Register', fingerprints }, { requestId, accountId: 'x', password: '' }, RegisterCloudAccountRequest, RegisterCloudAccountResponse)
  const answer = async () => ({ cloudAccount: { accountId: 'x', createTime: new Date() } })
  const keyCount = async () => Number((await db.selectFrom('idempotency_keys').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)
  before(() => {
    db = forSchema<PaymentDatabase>(database, 'payment_management')
  })

  test('an answered request id is kept for its window, then purged; a claimed one without its answer never is', async () => {
    const answered = call(randomUUID())
    await idempotent(db, answered, answer)
    const { created_at: calledAt } = await db.selectFrom('idempotency_keys').select('created_at').executeTakeFirstOrThrow()
    // A claim whose answer is not stored: committed by a crashed or lease-based claimer, ten days old.
    await db
      .insertInto('idempotency_keys')
      .values({ caller: 'operator/op', request_id: 'f'.repeat(64), method: 'test/Register', request_hash: 'h', response: new Uint8Array(), created_at: at(calledAt, -10 * DAY) })
      .execute()
    const purges = paymentPurges({ db, config })
    assert.deepEqual(await purgeAll(purges, { now: at(calledAt, DAY - MINUTE) }), { idempotency_keys: 0, outbox: 0 }, 'inside the window: kept')
    assert.ok(await replayOf(db, answered), 'still replayed')
    assert.deepEqual(await purgeAll(purges, { now: at(calledAt, DAY + MINUTE) }), { idempotency_keys: 1, outbox: 0 })
    assert.equal(await replayOf(db, answered), undefined, 'past the window: forgotten')
    assert.deepEqual(await purgeAll(purges, { now: at(calledAt, 1000 * DAY) }), { idempotency_keys: 0, outbox: 0 })
    assert.equal(await keyCount(), 1, 'the unanswered claim is kept however old')
    await db.deleteFrom('idempotency_keys').execute()
  })

  test('a call in flight keeps its key: a purge that runs meanwhile (even a year later by its clock) leaves it, and the call is answered and replayed', async () => {
    const inFlight = call(randomUUID())
    let purgedMeanwhile = -1
    const reply = await idempotent(db, inFlight, async (trx) => {
      // The purge sees the claim (this very transaction's row) and must not take it.
      purgedMeanwhile = await purgeAll([idempotencyPurge(trx, config.retention.idempotencyMs)], { now: at(new Date(), 365 * DAY) }).then((c) => c.idempotency_keys!)
      return answer()
    })
    assert.equal(purgedMeanwhile, 0)
    assert.deepEqual((await replayOf(db, inFlight))?.cloudAccount?.createTime, reply.cloudAccount?.createTime)
    await db.deleteFrom('idempotency_keys').execute()
  })

  test('each statement deletes a bounded batch', async () => {
    for (let i = 0; i < 5; i++) await idempotent(db, call(randomUUID()), answer)
    const kind = idempotencyPurge(db, DAY)
    const cutoff = at(new Date(), DAY)
    assert.deepEqual([await kind.deleteBatch(cutoff, 2), await kind.deleteBatch(cutoff, 2), await kind.deleteBatch(cutoff, 2)], [2, 2, 1])
    assert.equal(await keyCount(), 0)
  })
})

test(`outbox: a delivered row goes after its window; an undelivered one never, however old (${DATABASE_KIND})`, async () => {
  const db = forSchema<PaymentDatabase>(database, 'payment_management')
  const now = new Date()
  const [old, recent, pending] = [randomUUID(), randomUUID(), randomUUID()]
  for (const id of [old, recent, pending]) await enqueue(db, 'test-topic', { n: id }, id)
  await db.updateTable('outbox').set({ delivered_at: at(now, -DAY - MINUTE) }).where('delivery_id', '=', old).execute()
  await db.updateTable('outbox').set({ delivered_at: at(now, -DAY + MINUTE) }).where('delivery_id', '=', recent).execute()
  await db
    .updateTable('outbox')
    .set({ created_at: at(now, -365 * DAY), next_attempt_at: at(now, -365 * DAY), attempts: 1000 })
    .where('delivery_id', '=', pending)
    .execute()
  const purges = paymentPurges({ db, config })
  assert.deepEqual(await purgeAll(purges, { now }), { idempotency_keys: 0, outbox: 1 })
  const left = async () => (await db.selectFrom('outbox').select('delivery_id').execute()).map((r) => r.delivery_id).sort()
  assert.deepEqual(await left(), [recent, pending].sort())
  assert.deepEqual(await purgeAll(purges, { now: at(now, 1000 * DAY) }), { idempotency_keys: 0, outbox: 1 })
  assert.deepEqual(await left(), [pending], 'not delivered yet: kept')
})

test(`account management: logins and tokens go a window after their expiry, whatever their state; live ones and what is still presentable stay (${DATABASE_KIND})`, async () => {
  const db = forSchema<AccountDatabase>(database, 'account_management')
  const now = new Date()
  await db.insertInto('cloud_accounts').values({ account_id: 'ann', password_hash: 'h' }).execute()
  const login = (id: string, state: AccountDatabase['logins']['state'], expiresIn: number) =>
    db
      .insertInto('logins')
      .values({ login_id: id, device_id: 'dev-a', account_id: 'ann', assignment_id: 'as-1', binding_code: '123456', state, created_at: at(now, expiresIn - 5 * MINUTE), expires_at: at(now, expiresIn) })
      .execute()
  const token = (loginId: string, expiresIn: number, used: { consumed?: Date; ended?: Date } = {}) =>
    db
      .insertInto('login_tokens')
      .values({
        token_hash: `t-${loginId}`,
        login_id: loginId,
        device_id: 'dev-a',
        account_id: 'ann',
        assignment_id: 'as-1',
        created_at: at(now, expiresIn - 2 * MINUTE),
        expires_at: at(now, expiresIn),
        consumed_at: used.consumed ?? null,
        ended_at: used.ended ?? null,
      })
      .execute()
  await login('pending-live', 'pending', 5 * MINUTE)
  await login('pending-expired', 'pending', -DAY - HOUR)
  await login('verified-in-window', 'verified', -DAY + HOUR)
  await login('redeemed-token-live', 'redeemed', -DAY - HOUR)
  await token('redeemed-token-live', MINUTE)
  await login('redeemed-token-used', 'redeemed', -DAY - HOUR)
  await token('redeemed-token-used', -DAY - HOUR, { consumed: at(now, -DAY - 2 * HOUR) })
  await login('ended', 'ended', -DAY - HOUR)
  await token('ended', -DAY - HOUR, { ended: at(now, -2 * DAY) })
  // A tombstone: ended long ago, but the token could still be presented (and is refused as ended).
  await login('ended-presentable', 'ended', -DAY - HOUR)
  await token('ended-presentable', HOUR, { ended: at(now, -2 * DAY) })
  const failures = (subject: string, firstAgo: number, lockedIn: number | null) =>
    db
      .insertInto('login_failures')
      .values({ scope: 'device', subject, failures: 5, first_failure_at: at(now, -firstAgo), locked_until: lockedIn === null ? null : at(now, lockedIn) })
      .execute()
  await failures('stale', 2 * HOUR, null)
  await failures('stale-lock-over', 2 * HOUR, -HOUR)
  await failures('counting', MINUTE, null)
  await failures('locked', 2 * HOUR, 10 * MINUTE)
  await db.insertInto('rate_limits').values({ name: 'GetLogin', subject: 'instance/idle', tokens: 0, updated_at: at(now, -11 * MINUTE) }).execute()
  await db.insertInto('rate_limits').values({ name: 'GetLogin', subject: 'instance/busy', tokens: 0, updated_at: at(now, -MINUTE) }).execute()

  const counts = await purgeAll(accountPurges({ db, config }), { now })
  assert.deepEqual(counts, { idempotency_keys: 0, outbox: 0, login_tokens: 2, logins: 3, login_failures: 2, rate_limits: 1 })
  assert.deepEqual((await db.selectFrom('logins').select('login_id').orderBy('login_id').execute()).map((r) => r.login_id), [
    'ended-presentable',
    'pending-live',
    'redeemed-token-live',
    'verified-in-window',
  ])
  assert.deepEqual((await db.selectFrom('login_tokens').select('login_id').orderBy('login_id').execute()).map((r) => r.login_id), ['ended-presentable', 'redeemed-token-live'])
  assert.deepEqual((await db.selectFrom('login_failures').select('subject').orderBy('subject').execute()).map((r) => r.subject), ['counting', 'locked'])
  assert.deepEqual((await db.selectFrom('rate_limits').select('subject').execute()).map((r) => r.subject), ['instance/busy'])
})

test(`app service: sessions go a window after expiry; tombstones of ended assignments after theirs; a live assignment stays (${DATABASE_KIND})`, async () => {
  const db = forSchema<AppDatabase>(database, 'app_service')
  const now = new Date()
  await db.insertInto('app_accounts').values({ app_account_id: 'app-1', display_name: 'guest', archive: JSON.stringify({ level: 1, coins: 0 }) as never }).execute()
  const session = (id: string, expiresIn: number, endedAgo?: number) =>
    db
      .insertInto('app_sessions')
      .values({
        token_hash: id,
        app_account_id: 'app-1',
        device_id: 'dev-a',
        assignment_id: 'as-1',
        created_at: at(now, expiresIn - 12 * HOUR),
        expires_at: at(now, expiresIn),
        ended_at: endedAgo === undefined ? null : at(now, -endedAgo),
      })
      .execute()
  await session('live', HOUR)
  await session('ended-not-expired', HOUR, 2 * DAY)
  await session('expired-in-window', -DAY + HOUR)
  await session('expired', -DAY - HOUR)
  const assignment = (id: string, createdAgo: number, endedAgo: number | null) =>
    db
      .insertInto('device_assignments')
      .values({ device_id: 'dev-a', assignment_id: id, created_at: at(now, -createdAgo), ended_at: endedAgo === null ? null : at(now, -endedAgo) })
      .execute()
  await assignment('live-for-a-month', 30 * DAY, null)
  await assignment('ended-6-days-ago', 10 * DAY, 6 * DAY)
  await assignment('ended-8-days-ago', 10 * DAY, 8 * DAY)

  assert.deepEqual(await purgeAll(appPurges({ db, config }), { now }), { idempotency_keys: 0, app_sessions: 1, device_assignments: 1 })
  assert.deepEqual((await db.selectFrom('app_sessions').select('token_hash').orderBy('token_hash').execute()).map((r) => r.token_hash), [
    'ended-not-expired',
    'expired-in-window',
    'live',
  ])
  assert.deepEqual((await db.selectFrom('device_assignments').select('assignment_id').orderBy('assignment_id').execute()).map((r) => r.assignment_id), [
    'ended-6-days-ago',
    'live-for-a-month',
  ])
})

test(`instance events: closed channels and events go after their windows; an open channel stays however old (${DATABASE_KIND})`, async () => {
  const db = forSchema<EventsDatabase>(database, 'instance_events')
  const now = new Date()
  const channel = (id: string, openedAgo: number, closedAgo: number | null) =>
    db
      .insertInto('channels')
      .values({ channel_id: id, device_id: `dev-${id}`, terminal_id: 'phone', state: closedAgo === null ? 'open' : 'closed', opened_at: at(now, -openedAgo), closed_at: closedAgo === null ? null : at(now, -closedAgo) })
      .execute()
  await channel('open-a-year', 365 * DAY, null)
  await channel('closed-6-days-ago', 10 * DAY, 6 * DAY)
  await channel('closed-8-days-ago', 10 * DAY, 8 * DAY)
  const event = (sequence: bigint, ago: number) =>
    db.insertInto('events').values({ device_id: 'dev-e', sequence, kind: 'LOGIN_REQUESTED', subject_id: 's', publisher: 'instance/dev-e', created_at: at(now, -ago) }).execute()
  await event(1n, 8 * DAY)
  await event(2n, 6 * DAY)

  assert.deepEqual(await purgeAll(eventPurges({ db, config }), { now }), { idempotency_keys: 0, events: 1, channels: 1 })
  assert.deepEqual((await db.selectFrom('channels').select('channel_id').orderBy('channel_id').execute()).map((r) => r.channel_id), ['closed-6-days-ago', 'open-a-year'])
  assert.deepEqual((await db.selectFrom('events').select('sequence').execute()).map((r) => r.sequence), [2n])
})
