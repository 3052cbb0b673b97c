// Request ids (AIP-155) on PGlite, or on PostgreSQL when DATABASE_URL is set: a retry of the same
// request gets the first answer whatever state checks it runs first. Two views of one schema
// stand for two replicas (each has its own calls in flight).
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import { BindAppAccountRequest, BindAppAccountResponse } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import type { AccountDatabase } from '../../services/account-management/store/tables.ts'
import { forSchema, migrateSchema, type SharedDatabase } from '../../services/runtime/database.ts'
import { FailedPreconditionError, UnavailableError } from '../../services/runtime/errors.ts'
import { callOf, idempotent, idempotentAfter, idempotentFlow, idempotentFlowReadingAnswer, readingStoredAnswer } from '../../services/runtime/idempotency.ts'
import { registerRentalBoundary } from '../../services/runtime/rental-boundary.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, openFresh } from '../helpers/database.ts'

const fingerprints = new Sealer(randomBytes(32))
const caller = { role: 'terminal', id: 'phone-i' } as const
let database: SharedDatabase
let close: () => Promise<void>
before(async () => {
  ;({ database, close } = await openFresh())
  await migrateSchema(database, accountManagement.schema, accountManagement.migrations)
})
after(async () => close?.())

/** A replica's own view of the schema. */
const replica = () => forSchema<AccountDatabase>(database, accountManagement.schema)
const request = (requestId = randomUUID(), appAccountId = 'app-1') => ({ requestId, accountId: 'acct', appAccountId })
const callFor = (req: ReturnType<typeof request>, signal?: AbortSignal) =>
  callOf({ caller, method: 'test/Bind', fingerprints, signal }, req, BindAppAccountRequest, BindAppAccountResponse)
const answer = (appAccountId: string) => ({ binding: { accountId: 'acct', appAccountId, bindTime: new Date('2026-12-01T00:00:00Z') } })
const alreadyDone = () => new FailedPreconditionError('ALREADY_DONE', 'the state check saw the first call’s effect')

/** A flow's own first read with the call's stored answer as one more column, as the stores' are made (one template per answer shape). */
const COUNT_READING_ANSWER = readingStoredAnswer('test.countReadingAnswer', (db: Kysely<AccountDatabase>, _values: object, answer) =>
  db.selectFrom('cloud_accounts').select((eb) => [eb.fn.countAll().as('n'), answer(eb)]),
)

function gate() {
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  return { open, opened }
}

test(`a refusal gives way to the answer another replica stored meanwhile under the same request id (${DATABASE_KIND})`, async () => {
  const req = request()
  const checked = gate()
  const answered = gate()
  // Replica B: its state check runs after replica A committed, and refuses.
  const onB = idempotentFlow(replica(), callFor(req), async () => {
    checked.open()
    await answered.opened
    throw alreadyDone()
  })
  await checked.opened
  const first = await idempotentFlow(replica(), callFor(req), (commit) => commit(async () => answer('app-1')))
  answered.open()
  assert.deepEqual(await onB, first, 'the first answer, not ALREADY_DONE')

  // Nothing answered: a refusal stands. A different request under a used id: REQUEST_ID_REUSED.
  await assert.rejects(
    idempotentAfter(
      replica(),
      callFor(request()),
      async () => {
        throw alreadyDone()
      },
      async () => answer('x'),
    ),
    (error: unknown) => error instanceof FailedPreconditionError && error.reason === 'ALREADY_DONE',
  )
  await assert.rejects(
    idempotentFlow(replica(), callFor(request(req.requestId, 'app-2')), async () => {
      throw alreadyDone()
    }),
    (error: unknown) => (error as { reason?: string }).reason === 'REQUEST_ID_REUSED',
  )
})

test(`duplicates in flight on one replica wait for the first call and get its answer; its preparation runs once (${DATABASE_KIND})`, async () => {
  const db = replica()
  const req = request()
  const release = gate()
  let preparations = 0
  const calls = Array.from({ length: 8 }, () =>
    idempotentAfter(
      db,
      callFor(req),
      async () => {
        preparations++
        await release.opened
        // What a duplicate's own state check would say once the first committed.
        if (preparations > 1) throw alreadyDone()
        return 'prepared'
      },
      async () => answer('app-1'),
    ),
  )
  release.open()
  const answers = await Promise.all(calls)
  assert.equal(preparations, 1)
  for (const each of answers) assert.deepEqual(each, answers[0])
  // Plain idempotent() calls too.
  let runs = 0
  const plain = request()
  const more = await Promise.all(Array.from({ length: 4 }, () => idempotent(db, callFor(plain), async () => (runs++, answer('p')))))
  assert.equal(runs, 1)
  for (const each of more) assert.deepEqual(each, more[0])
})

test(`a duplicate runs itself when the first failed for its own reasons, and stops waiting when its own client is gone (${DATABASE_KIND})`, async () => {
  const db = replica()
  const req = request()
  const release = gate()
  let runs = 0
  const first = idempotentFlow(db, callFor(req), async () => {
    runs++
    await release.opened
    throw new UnavailableError('PEER_UNAVAILABLE', 'its peer call was cut with its client')
  })
  const second = idempotentFlow(db, callFor(req), async (commit) => (runs++, commit(async () => answer('app-1'))))
  release.open()
  await assert.rejects(first, UnavailableError)
  assert.deepEqual(await second, answer('app-1'))
  assert.equal(runs, 2)

  const hold = gate()
  const slowReq = request()
  const owner = idempotentFlow(db, callFor(slowReq), async () => {
    await hold.opened
    return answer('owner')
  })
  assert.deepEqual(await idempotentFlow(db, callFor(request()), async () => answer('other')), answer('other'), 'another request id does not wait')
  const gone = new AbortController()
  const waiter = idempotentFlow(db, callFor(slowReq, gone.signal), async () => answer('never'))
  gone.abort()
  await assert.rejects(waiter, (error: unknown) => (error as { code?: number }).code === Status.ABORTED && (error as { reason?: string }).reason === 'REQUEST_IN_PROGRESS')
  hold.open()
  assert.deepEqual(await owner, answer('owner'))
})

test(`a flow reading the stored answer in its own first statement: a retry gets it before preparing anything; another request under the id is refused (${DATABASE_KIND})`, async () => {
  const db = replica()
  const req = request()
  let preparations = 0
  let reads = 0
  const flow = (call: ReturnType<typeof callFor>, appAccountId: string) =>
    idempotentFlowReadingAnswer(db, call, async (commit, stored) => {
      const row = await COUNT_READING_ANSWER.first(db, {}, stored)
      reads++
      const previous = stored.answer(row?.stored_answer)
      if (previous) return previous
      preparations++
      return commit(async () => answer(appAccountId))
    })
  const first = await flow(callFor(req), 'app-1')
  assert.deepEqual(await flow(callFor(req), 'app-1'), first, 'the retry gets the first answer')
  assert.equal(preparations, 1, 'and prepares nothing')
  assert.equal(reads, 2, 'one read each, the answer within it')
  await assert.rejects(flow(callFor(request(req.requestId, 'app-2')), 'app-2'), (error: unknown) => (error as { reason?: string }).reason === 'REQUEST_ID_REUSED')
})

test(
  `two replicas running the same request at once: the effects of one commit, its answer to both (postgres)`,
  { skip: DATABASE_KIND !== 'postgres' && 'PostgreSQL only: an embedded database runs one transaction at a time' },
  async () => {
    await sql`create table if not exists account_management.test_effects (id text primary key)`.execute(database.db)
    const req = request()
    const working = gate()
    const release = gate()
    // Replica A does its work and is held before it stores its answer.
    const onA = idempotent(replica(), callFor(req), async (trx) => {
      await sql`insert into account_management.test_effects (id) values (${`A-${req.requestId}`})`.execute(trx)
      working.open()
      await release.opened
      return answer('app-1')
    })
    await working.opened
    // Replica B runs the same request meanwhile (no lock held by A stands in its way) and commits first.
    const onB = await idempotent(replica(), callFor(req), async (trx) => {
      await sql`insert into account_management.test_effects (id) values (${`B-${req.requestId}`})`.execute(trx)
      return { binding: { ...answer('app-1').binding!, bindTime: new Date('2026-12-01T00:00:01Z') } }
    })
    release.open()
    assert.deepEqual(await onA, onB, 'A answers with what B stored')
    const { rows } = await sql<{ id: string }>`select id from account_management.test_effects where id like ${`%-${req.requestId}`}`.execute(database.db)
    assert.deepEqual(
      rows.map((row) => row.id),
      [`B-${req.requestId}`],
      'A rolled back all it did',
    )
  },
)

test(`a caller bounded by a rental replays only its current rental's answers; duplicates of the new rental still store one (${DATABASE_KIND})`, async () => {
  // Where the instance's rental began, kept by device as a service keeps it and registered as a
  // service registers it (rental-boundary.ts): by the caller's role, the caller's id bound. No row: none recorded.
  const rentals = sql.table(`${accountManagement.schema}.test_rentals`)
  await sql`create table ${rentals} (device_id text primary key, began_at timestamptz not null)`.execute(database.db)
  const bounded = () => {
    const db = replica()
    registerRentalBoundary(db, (caller, eb) =>
      caller.role === 'instance' ? (eb as ExpressionBuilder<any, any>).selectFrom('test_rentals').select('began_at').where('device_id', '=', caller.id) : undefined,
    )
    return db
  }
  const instance = { role: 'instance', id: 'dev-i' } as const
  const req = request()
  const callOfInstance = () => callOf({ caller: instance, method: 'test/Bind', fingerprints }, req, BindAppAccountRequest, BindAppAccountResponse)
  // idempotent(): the work runs, and rolls back when the insert of its answer finds the key taken.
  const run = (db: Kysely<AccountDatabase>, appAccountId: string) => idempotent(db, callOfInstance(), async () => answer(appAccountId))
  // A flow reading the answer in its own first statement: the same boundary, in that statement.
  const otherReq = request()
  const read = (db: Kysely<AccountDatabase>, appAccountId: string, r = req) =>
    idempotentFlowReadingAnswer(db, callOf({ caller: instance, method: 'test/Bind', fingerprints }, r, BindAppAccountRequest, BindAppAccountResponse), async (commit, stored) => {
      const previous = stored.answer((await COUNT_READING_ANSWER.first(db, {}, stored))?.stored_answer)
      return previous ?? commit(async () => answer(appAccountId))
    })
  assert.deepEqual(await run(bounded(), 'first-rental'), answer('first-rental'))
  assert.deepEqual(await run(bounded(), 'again'), answer('first-rental'), 'within the rental a retry replays')
  assert.deepEqual(await read(bounded(), 'again'), answer('first-rental'), 'and so does a flow reading the answer itself')
  assert.deepEqual(await read(bounded(), 'first-rental'), answer('first-rental'))
  assert.deepEqual(await read(bounded(), 'first-rental', otherReq), answer('first-rental'))

  const now = await sql<{ now: Date }>`select now() as now`.execute(database.db)
  const began = new Date(new Date(now.rows[0]!.now).getTime() + 1)
  await sql`insert into ${rentals} values ('dev-i', ${began})`.execute(database.db)
  while (Date.now() <= began.getTime()) await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(await read(bounded(), 'next-rental', otherReq), answer('next-rental'), "a flow reading the answer itself does not read the earlier rental's")
  // Two replicas at once, the first rental's answer still stored: one replaces it, the other finds the key taken and replays.
  const [a, b] = await Promise.all([run(bounded(), 'next-rental-a'), run(bounded(), 'next-rental-b')])
  assert.deepEqual(a, b, 'both duplicates get the one stored answer')
  assert.notDeepEqual(a, answer('first-rental'), "the earlier rental's answer is not replayed")
  assert.deepEqual(await run(bounded(), 'later'), a)
  assert.deepEqual(await read(bounded(), 'later'), a, "a flow reading the answer itself reads the new rental's")
  const rows = await sql<{ n: string }>`select count(*) as n from ${sql.table(`${accountManagement.schema}.idempotency_keys`)} where caller = 'instance/dev-i'`.execute(database.db)
  assert.equal(Number(rows.rows[0]!.n), 2, 'one row under each of its two request ids')
})
