// The instance_events channel store on PGlite, or on PostgreSQL when DATABASE_URL is set.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Kysely } from 'kysely'
import { instanceEvents } from '../../services/instance-events/server.ts'
import * as store from '../../services/instance-events/store/repository.ts'
import type { EventsDatabase } from '../../services/instance-events/store/tables.ts'
import { DATABASE_KIND, openMigrated } from '../helpers/database.ts'

let db: Kysely<EventsDatabase>
let close: () => Promise<void>
before(async () => {
  ;({ db, close } = await openMigrated<EventsDatabase>(instanceEvents))
})
after(async () => close?.())

test(`one open channel per pair; closing frees the pair (${DATABASE_KIND})`, async () => {
  const first = await store.insertOpenChannel(db, 'c1', 'dev-1', 'term-1')
  assert.equal(first?.state, 'open')
  assert.equal(await store.insertOpenChannel(db, 'c2', 'dev-1', 'term-1'), undefined)
  assert.equal((await store.closeChannel(db, 'c1'))?.state, 'closed')
  assert.equal(await store.closeChannel(db, 'c1'), undefined, 'closing twice changes nothing')
  assert.equal((await store.insertOpenChannel(db, 'c3', 'dev-1', 'term-1'))?.channel_id, 'c3')
  assert.equal((await store.findOpenChannel(db, 'dev-1', 'term-1'))?.channel_id, 'c3')
})

test(`channels list newest first, filtered, paged by sequence (${DATABASE_KIND})`, async () => {
  await store.insertOpenChannel(db, 'k1', 'dev-9', 'term-9')
  await store.insertOpenChannel(db, 'k2', 'dev-8', 'term-9')
  await store.insertOpenChannel(db, 'k3', 'dev-9', 'term-7')
  const mine = await store.listChannels(db, { terminalId: 'term-9', includeClosed: false }, undefined, 10)
  assert.deepEqual(
    mine.map((c) => c.channel_id),
    ['k2', 'k1'],
  )
  const after = await store.listChannels(db, { terminalId: 'term-9', includeClosed: false }, mine[0]!.seq, 10)
  assert.deepEqual(
    after.map((c) => c.channel_id),
    ['k1'],
  )
  const device = await store.listChannels(db, { deviceId: 'dev-9', includeClosed: true }, undefined, 10)
  assert.deepEqual(
    device.map((c) => c.channel_id),
    ['k3', 'k1'],
  )
  assert.equal(typeof device[0]!.seq, 'bigint')
})
