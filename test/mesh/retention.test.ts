// Retention and shared rate limits in the running mesh: every service purges in the background
// of its own replica (started with it, stopped with it), and a big purge leaves the event loop
// free for gRPC calls.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { sql } from 'kysely'
import { unaryCall } from '../../services/runtime/client.ts'
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
