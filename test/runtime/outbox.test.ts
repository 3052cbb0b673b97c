// The transactional outbox on a real database (PGlite, or PostgreSQL when DATABASE_URL is set):
// a delivery no retry can change ends as a dead letter with its reason (logged once, counted) and
// is not attempted again; one out of attempts too; a clean stop hands unfinished leases back; the
// backoff is jittered; an idle outbox polls less and less, but not for its own retries; an
// acknowledgement rides in the service's next transaction.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import type { Kysely } from 'kysely'
import { paymentManagement } from '../../services/payment-management/server.ts'
import type { PaymentDatabase } from '../../services/payment-management/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { databaseCounters } from '../../services/runtime/database-tracing.ts'
import { createLogger } from '../../services/runtime/logger.ts'
import { type DeliveryHandler, type DeliveryTopic, enqueue, type OutboxOptions, retryDelayMs, startOutbox } from '../../services/runtime/outbox.ts'
import { PeerError, RelayedError } from '../../services/runtime/peer-calls.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

let db: Kysely<PaymentDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<PaymentDatabase>(paymentManagement))
})
after(async () => close?.())

function capture() {
  const lines: Record<string, unknown>[] = []
  const log = createLogger({ level: 'debug', name: 'outbox-test', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } })
  return { log, lines }
}

function outbox(handlers: Record<string, DeliveryHandler | DeliveryTopic>, extra: Partial<OutboxOptions> = {}) {
  const { log, lines } = capture()
  const box = startOutbox({ db, tracer: trace.getTracer('outbox-test'), log, retryBaseMs: 20, retryMaxMs: 50, intervalMs: 50, handlers, ...extra })
  return { box, lines }
}

const row = (id: string) => db.selectFrom('outbox').selectAll().where('delivery_id', '=', id).executeTakeFirstOrThrow()

/** Resolves when `check` holds, polling the table; fails after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const queue = (topic: string, payload: Record<string, string> = {}) => inTransaction(db, (trx) => enqueue(trx, topic, payload))

test(`a delivery refused permanently ends dead with its reason, is logged once and counted, and is not attempted again (${DATABASE_KIND})`, async () => {
  let refusals = 0
  const delivered: string[] = []
  const { box, lines } = outbox({
    refused: async () => {
      refusals++
      throw new RelayedError(Status.FAILED_PRECONDITION, 'ORDER_ENDED', 'order x ended; it cannot take this')
    },
    denied: async () => {
      refusals++
      throw new PeerError('payment-management', Status.PERMISSION_DENIED, 'signature does not verify')
    },
    fine: async (_payload, id) => void delivered.push(id),
  })
  try {
    const refused = await queue('refused')
    const denied = await queue('denied')
    box.kick()
    const dead = await until('the refused delivery to be dead', async () => ((await row(refused)).dead_at ? row(refused) : undefined))
    assert.match(dead.dead_reason ?? '', /^refused: order x ended/)
    assert.equal(dead.delivered_at, null)
    assert.equal(dead.attempts, 1, 'no retry after a permanent refusal')
    assert.match((await until('the denied delivery to be dead', async () => ((await row(denied)).dead_at ? row(denied) : undefined))).dead_reason ?? '', /PERMISSION_DENIED/)
    assert.equal(await box.delivered([refused], 5_000), false, 'a dead delivery ends the wait: it will never come')

    // Later passes (here: a good delivery queued after) do not touch the dead ones.
    const good = await queue('fine')
    assert.equal(await box.delivered([good], 5_000), true)
    for (let i = 0; i < 3; i++) {
      box.kick()
      assert.equal(await box.delivered([await queue('fine')], 5_000), true)
    }
    assert.equal(refusals, 2, 'each refused delivery was attempted exactly once')
    assert.equal((await row(refused)).attempts, 1)
    assert.equal(await box.pending(), 0, 'dead deliveries are not pending')
    assert.equal(box.deadLetters(), 2, 'counted')
    const errors = lines.filter((line) => line.level === 'error')
    assert.deepEqual(
      errors.map((line) => [line.topic, line.delivery_id]).sort(),
      [
        ['denied', denied],
        ['refused', refused],
      ].sort(),
      'one error line per dead letter',
    )
    assert.match(String(errors[0]!.reason), /^refused: /)
  } finally {
    await box.stop()
  }
})

test(`outages are retried with backoff; a delivery out of attempts ends dead; a topic decides which errors are permanent (${DATABASE_KIND})`, async () => {
  let attempts = 0
  const { box, lines } = outbox(
    {
      // NOT_FOUND is permanent by default; this topic says it may still change.
      flaky: {
        deliver: async () => {
          attempts++
          throw new RelayedError(Status.NOT_FOUND, 'ORDER_NOT_FOUND', 'not yet')
        },
        isPermanent: () => false,
      },
    },
    { maxAttempts: 3 },
  )
  try {
    const id = await queue('flaky')
    box.kick()
    const dead = await until('the delivery to run out of attempts', async () => ((await row(id)).dead_at ? row(id) : undefined))
    assert.equal(dead.attempts, 3)
    assert.equal(attempts, 3)
    assert.match(dead.dead_reason ?? '', /^gave up after 3 attempts; last error: not yet/)
    assert.equal(lines.filter((line) => line.msg === 'outbox delivery failed; will retry').length, 2, 'two retries were scheduled')
    assert.equal(lines.filter((line) => line.level === 'error').length, 1)
  } finally {
    await box.stop()
  }
})

test(`a clean stop hands the lease of an unfinished attempt back: another replica delivers it at once, not after the lease (${DATABASE_KIND})`, async () => {
  let release!: () => void
  const hung = new Promise<void>((resolve) => (release = resolve))
  let started!: () => void
  const attemptStarted = new Promise<void>((resolve) => (started = resolve))
  const leaseMs = 120_000
  const first = outbox(
    {
      slow: async () => {
        started()
        await hung
        throw new Error('the peer went away')
      },
    },
    { leaseMs, stopWaitMs: 50 },
  )
  const id = await queue('slow')
  first.box.kick()
  await attemptStarted
  assert.ok((await row(id)).next_attempt_at.getTime() > Date.now() + leaseMs / 2, 'leased while attempted')
  await first.box.stop()
  assert.ok((await row(id)).next_attempt_at.getTime() <= Date.now(), 'due again once the replica stopped')
  const second = outbox({ slow: async () => undefined }, { leaseMs })
  try {
    assert.equal(await second.box.delivered([id], 5_000), true, 'the other replica took it without waiting for the lease')
  } finally {
    release()
    await second.box.stop()
  }
})

test(`a delivery written in a transaction is attempted once it commits, held by its replica, with no pass over the table; a rolled-back one never is (${DATABASE_KIND})`, async () => {
  const attempts: { id: string; attempt: number }[] = []
  let attempted!: () => void
  const firstAttempt = new Promise<void>((resolve) => (attempted = resolve))
  // No poll (an hour) and no kick: only the commit can start the attempt.
  const { box } = outbox(
    {
      held: async (_payload, id, attempt) => {
        attempts.push({ id, attempt })
        attempted()
      },
    },
    { intervalMs: 3_600_000, leaseMs: 120_000 },
  )
  try {
    await assert.rejects(
      inTransaction(db, async (trx) => {
        await enqueue(trx, 'held', {}, 'rolled-back-delivery')
        throw new Error('the state change failed')
      }),
      /the state change failed/,
    )
    const id = await inTransaction(db, async (trx) => {
      const queued = await enqueue(trx, 'held', {})
      // Written leased to this replica, so no other replica's pass takes it meanwhile.
      const written = await trx.selectFrom('outbox').selectAll().where('delivery_id', '=', queued).executeTakeFirstOrThrow()
      assert.ok(written.next_attempt_at.getTime() > Date.now() + 60_000, 'held for the lease')
      assert.equal(written.attempts, 1)
      assert.deepEqual(attempts, [], 'not attempted before the commit')
      return queued
    })
    await firstAttempt
    assert.equal(await box.delivered([id], 5_000), true)
    assert.deepEqual(attempts, [{ id, attempt: 1 }])
    assert.equal(await db.selectFrom('outbox').select('delivery_id').where('delivery_id', '=', 'rolled-back-delivery').executeTakeFirst(), undefined)
  } finally {
    await box.stop()
  }
})

test(`a held delivery whose replica dies mid-attempt is taken by another replica after the lease; a handler may acknowledge in its own transaction (${DATABASE_KIND})`, async () => {
  let started!: () => void
  const attemptStarted = new Promise<void>((resolve) => (started = resolve))
  const dying = outbox({ handoff: () => (started(), new Promise<void>(() => undefined)) }, { intervalMs: 3_600_000, leaseMs: 300, stopWaitMs: 0 })
  const id = await queue('handoff', { order_id: 'o-1' })
  await attemptStarted
  // Another replica: its own view of the schema, polling as every replica does.
  const effects: string[] = []
  const other = startOutbox({
    db: db.withSchema('payment_management') as Kysely<PaymentDatabase>,
    tracer: trace.getTracer('outbox-test'),
    log: capture().log,
    retryBaseMs: 20,
    retryMaxMs: 50,
    intervalMs: 50,
    leaseMs: 300,
    handlers: {
      handoff: async (payload, deliveryId, attempt, acknowledge) => {
        await inTransaction(db, async (trx) => {
          effects.push(`${payload.order_id} attempt ${attempt}`)
          await acknowledge(trx)
          const inside = await trx.selectFrom('outbox').select('delivered_at').where('delivery_id', '=', deliveryId).executeTakeFirstOrThrow()
          assert.ok(inside.delivered_at, 'marked delivered inside the handler’s transaction')
        })
      },
    },
  })
  try {
    assert.equal(await other.delivered([id], 10_000), true, 'delivered by the other replica once the lease ran out')
    assert.deepEqual(effects, ['o-1 attempt 2'])
  } finally {
    await other.stop()
    // The dying replica never finishes its attempt; with stopWaitMs 0 its stop hands the lease back at once (already delivered: nothing changes).
    await dying.box.stop()
  }
  assert.ok((await row(id)).delivered_at)
})

test(`deliveries acknowledged in the same turn are marked delivered in one statement (${DATABASE_KIND})`, async () => {
  // Contexts carried across awaits, as the services' telemetry sets up.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  const { box } = outbox({ quick: async () => undefined }, { intervalMs: 3_600_000 })
  try {
    // Under a span, as a handler's work is: its statements are counted.
    const tracer = trace.getTracer('outbox-test')
    const span = tracer.startSpan('queue three')
    const before = databaseCounters.statementsOutsideTransactions
    const ids = await context.with(trace.setSpan(context.active(), span), () =>
      inTransaction(db, async (trx) => [await enqueue(trx, 'quick', {}), await enqueue(trx, 'quick', {}), await enqueue(trx, 'quick', {})]),
    )
    assert.equal(await box.delivered(ids, 5_000), true)
    span.end()
    // delivered() itself reads once with no span; the three marks are one UPDATE.
    assert.equal(databaseCounters.statementsOutsideTransactions - before, 1, 'one UPDATE for three acknowledgements')
  } finally {
    await box.stop()
    context.disable()
  }
})

test(`an acknowledgement rides in the service's next transaction, with no commit of its own; one rolled back hands it to the next (${DATABASE_KIND})`, async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  let attempts = 0
  // A window of an hour: the acknowledgement can only be written by riding in a transaction (or by stop()).
  const { box } = outbox({ quick: async () => void attempts++ }, { intervalMs: 3_600_000, ackWindowMs: 3_600_000 })
  const span = trace.getTracer('outbox-test').startSpan('work of the service')
  const traced = <T>(work: () => Promise<T>) => context.with(trace.setSpan(context.active(), span), work)
  const commits = () => ({ transactions: databaseCounters.transactions, alone: databaseCounters.statementsOutsideTransactions })
  try {
    const first = await queue('quick')
    await until('the first attempt', async () => attempts === 1)
    assert.equal((await row(first)).delivered_at, null, 'attempted, its acknowledgement waiting')
    const before = commits()
    await traced(() => inTransaction(db, (trx) => trx.selectFrom('orders').select('order_id').limit(1).execute()))
    const after = commits()
    assert.deepEqual({ transactions: after.transactions - before.transactions, alone: after.alone - before.alone }, { transactions: 1, alone: 0 }, 'the one transaction, and no UPDATE of its own')
    assert.notEqual((await row(first)).delivered_at, null, 'marked delivered with that transaction')

    const second = await queue('quick')
    await until('the second attempt', async () => attempts === 2)
    await inTransaction(db, async (trx) => {
      await trx.selectFrom('orders').select('order_id').limit(1).execute()
      throw new Error('rolled back')
    }).catch(() => undefined)
    assert.equal((await row(second)).delivered_at, null, 'rolled back with the transaction that carried it')
    await inTransaction(db, (trx) => trx.selectFrom('orders').select('order_id').limit(1).execute())
    assert.notEqual((await row(second)).delivered_at, null, 'carried again by the next one, which committed')
    assert.equal(attempts, 2, 'never attempted again')
  } finally {
    span.end()
    await box.stop()
    context.disable()
  }
})

test(`an idle outbox looks at its table less and less often (${DATABASE_KIND})`, async () => {
  const { box } = outbox({}, { intervalMs: 50, idleIntervalMs: 800 })
  try {
    // Empty passes wait 50, 100, 200, 400, then 800 ms: timers never fire early, so six passes
    // take at least their sum, however loaded the machine (a fixed 50 ms poll takes 250 ms).
    const started = Date.now()
    await until('six passes', async () => box.passes() >= 6)
    assert.ok(Date.now() - started >= 50 + 100 + 200 + 400 + 800 - 5, `six passes in ${Date.now() - started} ms`)
  } finally {
    await box.stop()
  }
})

test(`a failed attempt is retried when its backoff is due, with no poll to find it (${DATABASE_KIND})`, async () => {
  let failures = 2
  const attempts: number[] = []
  // No poll (an hour) and no kick: only the retry's own timer can find it again.
  const { box } = outbox(
    {
      flaky: async (_payload, _id, attempt) => {
        attempts.push(attempt)
        if (failures-- > 0) throw new Error('the peer is restarting')
      },
    },
    { intervalMs: 3_600_000, retryBaseMs: 40, retryMaxMs: 80 },
  )
  try {
    const id = await queue('flaky')
    assert.equal(await box.delivered([id], 10_000), true)
    assert.deepEqual(attempts, [1, 2, 3])
  } finally {
    await box.stop()
  }
})

test('the retry backoff doubles up to its cap and is jittered to 50-100 % of it', () => {
  assert.equal(
    retryDelayMs(1, 100, 1_000, () => 1),
    100,
  )
  assert.equal(
    retryDelayMs(1, 100, 1_000, () => 0),
    50,
  )
  assert.equal(
    retryDelayMs(3, 100, 1_000, () => 1),
    400,
  )
  assert.equal(
    retryDelayMs(30, 100, 1_000, () => 1),
    1_000,
  )
  assert.equal(
    retryDelayMs(30, 100, 1_000, () => 0),
    500,
  )
  const seen = new Set(Array.from({ length: 50 }, () => retryDelayMs(4, 100, 10_000)))
  assert.ok(seen.size > 10, 'random jitter, not one fixed delay')
  for (const delay of seen) assert.ok(delay >= 400 && delay <= 800, `${delay} within 400-800`)
})
