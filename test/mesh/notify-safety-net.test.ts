// The Notify pipe's safety net: an event whose database notification never arrived (stored by a
// path that did not NOTIFY, or lost) still reaches every subscriber of the device within the poll
// interval, because the hub sweeps each device's up-to-date subscribers.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { sql } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { instanceEvents } from '../../services/instance-events/server.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { newRequestId } from '../helpers/grpc.ts'
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { subscribe } from '../helpers/subscriber.ts'

const DEVICE = { role: 'instance', id: 'dev-safety-net' } as const
const POLL_MS = 300

let t: TestMesh
before(async () => {
  t = await startTestMesh({ services: [instanceEvents], env: { CLOUDPAY_SUBSCRIBER_POLL_MS: String(POLL_MS) } })
})
after(async () => t?.stop())

test('an event stored without a notification reaches all subscribers within the poll interval', async () => {
  const client = await t.client('instance-events', DEVICE)
  const first = (await unaryCall(client, 'publish', { requestId: newRequestId(), deviceId: DEVICE.id, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'notified' })).event!
  const followers = [subscribe(client, DEVICE.id), subscribe(client, DEVICE.id), subscribe(client, DEVICE.id, first.sequence)]
  try {
    for (const follower of followers.slice(0, 2)) assert.equal((await follower.waitFor(1))[0]!.subjectId, 'notified')
    const pipe = () => t.mesh.services.find((s) => s.name === 'instance-events')!.introspect().subscribers
    while ((pipe() ?? 0) < 3) await new Promise((resolve) => setTimeout(resolve, 20))

    // As a publish would store it, minus the NOTIFY.
    const db = t.mesh.database.db
    await db.transaction().execute(async (trx) => {
      await sql`update instance_events.device_streams set last_sequence = last_sequence + 1 where device_id = ${DEVICE.id}`.execute(trx)
      await sql`insert into instance_events.events (device_id, sequence, kind, subject_id, publisher, trace_parent)
                values (${DEVICE.id}, ${first.sequence + 1n}, 'PAYMENT_REQUESTED', 'silent', 'instance/dev-safety-net', '')`.execute(trx)
    })
    for (const follower of followers) {
      const events = await follower.waitFor(follower === followers[2] ? 1 : 2, 20 * POLL_MS)
      assert.deepEqual(
        events.map((e) => [e.sequence, e.subjectId]),
        follower === followers[2]
          ? [[first.sequence + 1n, 'silent']]
          : [
              [first.sequence, 'notified'],
              [first.sequence + 1n, 'silent'],
            ],
      )
    }
  } finally {
    for (const follower of followers) follower.cancel()
  }
})
