// The Notify pipe's store on PGlite, or on PostgreSQL when DATABASE_URL is set: gapless
// sequences under concurrent publishers, retention, and where a subscriber may resume.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import * as pipe from '../../services/instance-events/pipe.ts'
import { instanceEvents } from '../../services/instance-events/server.ts'
import type { EventsDatabase } from '../../services/instance-events/store/tables.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

let db: Kysely<EventsDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<EventsDatabase>(instanceEvents))
})
after(async () => close?.())

const publisher = { role: 'instance', id: 'dev-s' } as const

test(`concurrent publishers get gapless, unique sequences per device (${DATABASE_KIND})`, async () => {
  const rows = await Promise.all(
    Array.from({ length: 20 }, (_, i) => pipe.publish(db, { deviceId: i % 2 ? 'dev-s' : 'dev-t', kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: `s${i}`, publisher })),
  )
  for (const device of ['dev-s', 'dev-t']) {
    const sequences = rows
      .filter((r) => r.device_id === device)
      .map((r) => r.sequence)
      .sort((a, b) => (a < b ? -1 : 1))
    assert.deepEqual(
      sequences,
      Array.from({ length: 10 }, (_, i) => BigInt(i + 1)),
    )
  }
  assert.equal(pipe.kindFromName(rows[0]!.kind), EventKind.EVENT_KIND_LOGIN_REQUESTED)
})

test(`expired events are deleted; resuming across them is refused, from 0 it is not (${DATABASE_KIND})`, async () => {
  const retentionMs = 60_000
  assert.equal(await pipe.expireEvents(db, retentionMs, new Date()), 0, 'nothing is old yet')
  const deleted = await pipe.expireEvents(db, retentionMs, new Date(Date.now() + 2 * retentionMs))
  assert.equal(deleted, 20)
  await pipe.assertResumable(db, 'dev-s', 0n)
  await pipe.assertResumable(db, 'dev-s', 10n)
  await assert.rejects(pipe.assertResumable(db, 'dev-s', 5n), /expired/)
  await assert.rejects(pipe.assertResumable(db, 'dev-s', 11n), /beyond/)
  const next = await pipe.publish(db, { deviceId: 'dev-s', kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId: 'after-expiry', publisher })
  assert.equal(next.sequence, 11n, 'sequences are never reused')
  await pipe.assertResumable(db, 'dev-s', 10n)
})
