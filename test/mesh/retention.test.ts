// Retention and shared rate limits in the running mesh: every service purges in the background
// of its own replica (started with it, stopped with it), a big purge leaves the event loop free
// for gRPC calls, and two AccountManagement replicas sharing one database together allow GetLogin
// no more often than one would.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { sql } from 'kysely'
import { accountManagement } from '../../services/account-management/server.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { STATUS_DETAILS_KEY } from '../../services/runtime/errors.ts'
import { RetryInfo } from '../../gen/google/rpc/error_details.ts'
import { Status as RpcStatus } from '../../gen/google/rpc/status.ts'
import { flows, instance } from '../../cli/demo/steps.ts'
import { expectStatus } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'

let t: TestMesh
before(async () => {
  t = await startTestMesh()
})
after(async () => t?.stop())

const running = (name: string) => t.mesh.services.find((s) => s.name === name)!
const DAY_MS = 86_400_000

test('every service runs its retention purge with it: old answered request ids go, fresh ones stay', async () => {
  const db = t.mesh.database.db
  for (const service of t.mesh.services) {
    const schema = service.name.replaceAll('-', '_')
    for (const [id, age] of [
      ['old', 2 * DAY_MS],
      ['fresh', 0],
    ] as const) {
      await db
        .withSchema(schema)
        .insertInto('idempotency_keys')
        .values({ caller: 'operator/retention', request_id: id, method: 'test/Old', request_hash: 'h', response: new Uint8Array([1]), created_at: new Date(Date.now() - age) })
        .execute()
    }
  }
  for (const service of t.mesh.services) {
    assert.ok(service.retention, `${service.name} has a retention worker`)
    const counts = await service.retention.runNow()
    assert.equal(counts.idempotency_keys, 1, `${service.name} purged its old request id`)
    const left = await db.withSchema(service.name.replaceAll('-', '_')).selectFrom('idempotency_keys').select('request_id').where('caller', '=', 'operator/retention').execute()
    assert.deepEqual(
      left.map((r) => r.request_id),
      ['fresh'],
    )
  }
})

test('a call made during a big purge completes before the purge does: batches yield to the event loop', async () => {
  const rows = 60_000
  await sql`insert into instance_events.events (device_id, sequence, kind, subject_id, publisher, created_at)
            select 'dev-bulk', g, 'LOGIN_REQUESTED', 's', 'instance/dev-bulk', now() - interval '30 days' from generate_series(1, ${rows}::int) g`.execute(t.mesh.database.db)
  const events = await t.client('instance-events', OPERATOR)
  const list = () => unaryCall(events, 'listChannels', { terminalId: '', deviceId: 'dev-bulk', includeClosed: true, pageSize: 10, pageToken: '' })
  await list() // connected and warm
  let purgeDone = false
  const pass = running('instance-events')
    .retention!.runNow()
    .finally(() => (purgeDone = true))
  await list()
  assert.equal(purgeDone, false, 'the call was answered while the purge was still deleting')
  assert.equal((await pass).events, rows, `all ${rows} expired events purged, in batches of 500`)
})

test('two AccountManagement replicas on one database allow GetLogin at the limit together (RESOURCE_EXHAUSTED with RetryInfo beyond it)', async () => {
  // A second replica: its own server and limiter, the same database (and CA).
  const second = await startTestMesh({
    services: [accountManagement],
    env: { CLOUDPAY_HOME: t.fresh.home, ...(t.fresh.location.databaseUrl ? { DATABASE_URL: t.fresh.location.databaseUrl } : {}) },
  })
  try {
    const { setUp, startLogin } = flows(t, OPERATOR)
    await setUp('rita', 'rita-password-1', 'cg-rl', 'rita-phone')
    const login = await startLogin('cg-rl')
    const replicas = [await t.client('account-management', instance('cg-rl')), await second.client('account-management', instance('cg-rl'))]
    const started = Date.now()
    let allowed = 0
    let refused: Awaited<ReturnType<typeof expectStatus>> | undefined
    for (let i = 0; i < 16; i++) {
      const call = unaryCall(replicas[i % 2]!, 'getLogin', { deviceId: 'cg-rl', loginId: login.loginId })
      try {
        await call
        allowed += 1
      } catch {
        refused = await expectStatus(call, Status.RESOURCE_EXHAUSTED, 'wait for events')
      }
    }
    const elapsedS = (Date.now() - started) / 1000
    // 5 at once, then 2 per second: one replica's allowance, shared (each limiting alone would allow twice as many).
    assert.ok(allowed >= 5 && allowed <= 5 + Math.floor(2 * elapsedS), `allowed ${allowed} in ${elapsedS.toFixed(2)} s`)
    assert.equal(refused?.reason, 'RATE_LIMITED')
    const details = RpcStatus.decode(refused!.error.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer).details
    const retry = details.find((any) => any.typeUrl.endsWith('/google.rpc.RetryInfo'))
    assert.ok(retry, 'RetryInfo says when to try again')
    const delay = RetryInfo.decode(retry.value).retryDelay!
    assert.ok(Number(delay.seconds) * 1000 + delay.nanos / 1e6 <= 500)
  } finally {
    await second.stop()
  }
  const stopped = second.mesh.services[0]!
  await assert.rejects(stopped.retention!.runNow(), /stopped/, 'the retention worker stopped with its service')
})
