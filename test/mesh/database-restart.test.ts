// The database restarts under a running mesh (a PostgreSQL of this test's own): no service
// process dies, calls during the outage get UNAVAILABLE (what retry policies retry), health says
// NOT_SERVING while the database is away and SERVING after, and work goes on by itself.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { sql } from 'kysely'
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { subscribe } from '../helpers/subscriber.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { type PostgresServer, startPostgresServer } from '../helpers/postgres-server.ts'

let server: PostgresServer | undefined
let t: TestMesh | undefined
before(async () => {
  server = await startPostgresServer()
  // No safety-net poll to speak of: only the loss of the database may end a waiting stream.
  if (server) t = await startTestMesh({ env: { DATABASE_URL: server.url, CLOUDPAY_SUBSCRIBER_POLL_MS: '600000' } })
})
after(async () => {
  await t?.stop()
  await server?.remove()
})

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

test('a PostgreSQL restart kills no service; UNAVAILABLE and NOT_SERVING while it is away; serving again after', { timeout: 120_000 }, async (context) => {
  if (!server || !t) return context.skip('no PostgreSQL server binaries here (CI installs them)')
  const mesh = t
  const accounts = await mesh.client('account-management', OPERATOR)
  const health = createClient(HealthClient, mesh.address('account-management'), await mesh.credentials(OPERATOR))
  after(() => health.close())
  const status = async () => (await unaryCall(health, 'check', { service: '' })).status
  await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'before-restart', password: 'before restart 1' })
  assert.equal(await status(), Serving.SERVING)
  // A Notify subscriber, caught up and waiting, when the database goes.
  const instance = await mesh.client('instance-events', { role: 'instance', id: 'restart-device' })
  await unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: 'restart-device', kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'before' })
  const subscriber = subscribe(instance, 'restart-device')
  await subscriber.waitFor(1)

  // Connections checked out of the pool when the server goes, one running a query and one idle in
  // a transaction: pg reports the idle one's loss as an 'error' event on the client itself.
  const running = sql`select pg_sleep(30)`.execute(mesh.mesh.database.db).then(
    () => 'finished',
    () => 'failed',
  )
  let stopped!: () => void
  const serverStopped = new Promise<void>((resolve) => (stopped = resolve))
  let inTransaction!: () => void
  const transactionOpen = new Promise<void>((resolve) => (inTransaction = resolve))
  const idle = mesh.mesh.database.db
    .transaction()
    .execute(async (trx) => {
      await sql`select 1`.execute(trx)
      inTransaction()
      await serverStopped
      await sql`select 1`.execute(trx)
    })
    .then(
      () => 'finished',
      () => 'failed',
    )
  await transactionOpen
  await until('the query to be running', async () => {
    const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where query like 'select pg_sleep%'`.execute(mesh.mesh.database.db)
    return Number(rows[0]!.n) > 0 ? true : undefined
  })
  await server.stop()
  stopped()
  assert.equal(await running, 'failed')
  assert.equal(await idle, 'failed')

  await until('NOT_SERVING', async () => ((await status()) === Serving.NOT_SERVING ? true : undefined))
  // The stream ends with a status a client resumes on, instead of hanging on a database that is gone.
  const ended = await subscriber.ended
  assert.equal(ended.code, Status.UNAVAILABLE, ended.details)
  const during = await expectStatus(
    unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'during-outage', password: 'during outage 1' }),
    Status.UNAVAILABLE,
  )
  assert.equal(during.reason, 'DATABASE_UNAVAILABLE')

  await server.start()
  await until('SERVING again', async () => ((await status()) === Serving.SERVING ? true : undefined))
  // A real client retries UNAVAILABLE with the same request id.
  const requestId = newRequestId()
  const reply = await until('the call to succeed', () =>
    unaryCall(accounts, 'registerCloudAccount', { requestId, accountId: 'after-restart', password: 'after restart 1' }),
  )
  assert.equal(reply.cloudAccount?.accountId, 'after-restart')
  const listed = await unaryCall(accounts, 'listCloudAccounts', { pageSize: 10, pageToken: '' })
  assert.deepEqual(
    listed.cloudAccounts.map((a) => a.accountId),
    ['after-restart', 'before-restart'],
  )
})
