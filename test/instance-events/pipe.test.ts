// InstanceEvents' rules (services/instance-events/pipe.ts, channels.ts) on a real database, no
// gRPC: who may publish which kind, gapless per-stream sequences (a device's pipe and a
// terminal's stream never meet), where a subscriber may resume, retention at its boundary, and
// channels opened and closed once.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import * as channels from '../../services/instance-events/channels.ts'
import * as pipe from '../../services/instance-events/pipe.ts'
import { instanceEvents } from '../../services/instance-events/server.ts'
import type { EventsDatabase } from '../../services/instance-events/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { DATABASE_KIND, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<EventsDatabase>(instanceEvents)
const INSTANCE: Identity = { role: 'instance', id: 'dev-1' }
const ACCOUNTS: Identity = { role: 'service', id: 'account-management' }
const PAYMENTS: Identity = { role: 'service', id: 'payment-management' }
const TERMINAL: Identity = { role: 'terminal', id: 'phone' }
const newId = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`

const publish = (deviceId: string, kind = EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId = newId('login')) =>
  pipe.publish(service.db, { deviceId, kind, subjectId, publisher: INSTANCE })

/** Whether assertion `check` refuses with KIND_NOT_ALLOWED. */
function refusesKind(check: () => void): boolean {
  try {
    check()
    return false
  } catch (error) {
    assert.equal((error as { reason?: string }).reason, 'KIND_NOT_ALLOWED')
    return true
  }
}

test(`publishers: an instance asks, AccountManagement answers logins, PaymentManagement tells how orders ended; nobody else (${DATABASE_KIND})`, () => {
  const allowed: [Identity, EventKind][] = [
    [INSTANCE, EventKind.EVENT_KIND_LOGIN_REQUESTED],
    [INSTANCE, EventKind.EVENT_KIND_PAYMENT_REQUESTED],
    [ACCOUNTS, EventKind.EVENT_KIND_LOGIN_VERIFIED],
    [ACCOUNTS, EventKind.EVENT_KIND_LOGIN_REJECTED],
    [PAYMENTS, EventKind.EVENT_KIND_ORDER_EFFECTIVE],
    [PAYMENTS, EventKind.EVENT_KIND_ORDER_FAILED],
  ]
  for (const [publisher, kind] of allowed)
    assert.equal(
      refusesKind(() => pipe.assertMayPublish(publisher, kind)),
      false,
      `${publisher.id} ${EventKind[kind]}`,
    )
  const refused: [Identity, EventKind][] = [
    [INSTANCE, EventKind.EVENT_KIND_LOGIN_VERIFIED], // an instance cannot log itself in
    [INSTANCE, EventKind.EVENT_KIND_ORDER_EFFECTIVE], // nor pay for itself
    [PAYMENTS, EventKind.EVENT_KIND_LOGIN_VERIFIED],
    [ACCOUNTS, EventKind.EVENT_KIND_ORDER_EFFECTIVE],
    [TERMINAL, EventKind.EVENT_KIND_LOGIN_REQUESTED],
    [{ role: 'service', id: 'app-service' }, EventKind.EVENT_KIND_ORDER_EFFECTIVE],
  ]
  for (const [publisher, kind] of refused)
    assert.ok(
      refusesKind(() => pipe.assertMayPublish(publisher, kind)),
      `${publisher.role}/${publisher.id} ${EventKind[kind]}`,
    )

  assert.equal(
    refusesKind(() => pipe.assertMayPublishToTerminals(PAYMENTS, EventKind.EVENT_KIND_PAYMENT_PUSHED)),
    false,
  )
  assert.equal(
    refusesKind(() => pipe.assertMayPublishToTerminals(ACCOUNTS, EventKind.EVENT_KIND_TERMINAL_REMOVED)),
    false,
  )
  assert.equal(
    refusesKind(() => pipe.assertMayPublishToTerminals({ role: 'service', id: 'payment-platform' }, EventKind.EVENT_KIND_OFFLINE_CODE_REDEEMED)),
    false,
  )
  assert.ok(refusesKind(() => pipe.assertMayPublishToTerminals(ACCOUNTS, EventKind.EVENT_KIND_PAYMENT_PUSHED)))
  assert.ok(refusesKind(() => pipe.assertMayPublishToTerminals(INSTANCE, EventKind.EVENT_KIND_PAYMENT_PUSHED)))
})

test(`each stream has its own gapless sequence, and a terminal's stream never meets a device's of the same id (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  const other = newId('dev')
  assert.deepEqual([(await publish(device)).sequence, (await publish(device)).sequence, (await publish(other)).sequence, (await publish(device)).sequence], [1n, 2n, 1n, 3n])

  // A terminal whose id equals the device's has a stream of its own.
  const toTerminal = await inTransaction(service.db, (trx) =>
    pipe.publishToTerminal(trx, { terminalId: device, kind: EventKind.EVENT_KIND_PAYMENT_PUSHED, subjectId: 'order-1', publisher: PAYMENTS }),
  )
  assert.equal(toTerminal.sequence, 1n)
  assert.equal(toTerminal.device_id, pipe.terminalStream(device))
  assert.ok(pipe.isTerminalStream(toTerminal.device_id))
  assert.equal(pipe.terminalOfStream(toTerminal.device_id), device)

  const events = await pipe.readEvents(service.db, pipe.deviceStream(device), 1n, 10)
  assert.deepEqual(
    events.map((e) => e.sequence),
    [2n, 3n],
    'after a sequence, in order, the terminal event not among them',
  )
  assert.deepEqual(
    (await pipe.readEvents(service.db, device, 0n, 2)).map((e) => e.sequence),
    [1n, 2n],
    'at most the limit',
  )
  assert.equal(pipe.kindFromName(events[0]!.kind), EventKind.EVENT_KIND_LOGIN_REQUESTED)
})

test(`a rolled-back publish leaves no gap: the next event takes its sequence (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  await publish(device)
  await assert.rejects(
    inTransaction(service.db, async (trx) => {
      await pipe.publish(service.db, { deviceId: device, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'x', publisher: INSTANCE }, trx)
      throw new Error('the caller failed after publishing')
    }),
    /the caller failed/,
  )
  assert.equal((await publish(device)).sequence, 2n)
})

test(`resuming: from 0 always; after any retained sequence; never beyond the newest; told when events expired (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  await pipe.assertResumable(service.db, device, 0n) // a device with no events yet
  await refusedWith(pipe.assertResumable(service.db, device, 1n), 'SEQUENCE_AHEAD')
  const first = await publish(device)
  await publish(device)
  const last = await publish(device)
  for (const after of [0n, 1n, 2n, 3n]) await pipe.assertResumable(service.db, device, after)
  const ahead = await refusedWith(pipe.assertResumable(service.db, device, 4n), 'SEQUENCE_AHEAD')
  assert.equal(ahead.metadata.last_sequence, '3')

  // Retention keeps an event until exactly retentionMs after it was stored, and drops it after.
  const retentionMs = 60_000
  const createdAt = first.created_at.getTime()
  await pipe.expireEvents(service.db, retentionMs, new Date(createdAt + retentionMs))
  assert.equal((await pipe.readEvents(service.db, device, 0n, 10)).length, 3, 'kept at the boundary')
  await pipe.expireEvents(service.db, retentionMs, new Date(last.created_at.getTime() + retentionMs + 1))
  assert.equal((await pipe.readEvents(service.db, device, 0n, 10)).length, 0, 'gone after it')

  const expired = await refusedWith(pipe.assertResumable(service.db, device, 1n), 'EVENTS_EXPIRED')
  assert.equal(expired.metadata.oldest_sequence, '4', 'nothing retained: the next event will be 4')
  await refusedWith(pipe.assertResumable(service.db, device, 2n), 'EVENTS_EXPIRED') // event 3 alone would be missed
  await pipe.assertResumable(service.db, device, 3n) // caught up: nothing was missed
  await pipe.assertResumable(service.db, device, 0n)
  assert.equal((await publish(device)).sequence, 4n, 'expiry never reuses a sequence')
})

test(`channels: open once per device and terminal, closed once, then open again; unknown ones are not found (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  const opened = await channels.openChannel(service.db, device, 'phone')
  assert.equal(opened.state, 'open')
  assert.ok(await channels.isChannelOpen(service.db, device, 'phone'))
  assert.equal(await channels.isChannelOpen(service.db, device, 'tablet'), false)
  const again = await refusedWith(channels.openChannel(service.db, device, 'phone'), 'CHANNEL_ALREADY_OPEN')
  assert.equal(again.metadata.channel_id, opened.channel_id)

  assert.equal((await channels.closeChannel(service.db, opened.channel_id)).state, 'closed')
  await refusedWith(channels.closeChannel(service.db, opened.channel_id), 'CHANNEL_CLOSED')
  await refusedWith(channels.closeChannel(service.db, randomUUID()), 'CHANNEL_NOT_FOUND')
  assert.equal(await channels.isChannelOpen(service.db, device, 'phone'), false)
  const reopened = await channels.openChannel(service.db, device, 'phone')
  assert.notEqual(reopened.channel_id, opened.channel_id)
})

test(`a release closes the device's channels opened before it; one opened at or after it, for the next renter, stays (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  const phone = await channels.openChannel(service.db, device, 'phone')
  const tablet = await channels.openChannel(service.db, device, 'tablet')
  const elsewhere = await channels.openChannel(service.db, newId('dev'), 'phone')
  assert.deepEqual(await channels.closeDeviceChannels(service.db, device, phone.opened_at), [], 'opened at the release itself: kept')
  const closed = await channels.closeDeviceChannels(service.db, device, new Date(Math.max(phone.opened_at.getTime(), tablet.opened_at.getTime()) + 1))
  assert.deepEqual(closed.map((c) => c.channel_id).sort(), [phone.channel_id, tablet.channel_id].sort())
  assert.ok(await channels.isChannelOpen(service.db, elsewhere.device_id, 'phone'), "another device's channel is not touched")
})

test(`each device event belongs to one rental: a service's event about an ended rental stays with it, a redelivered release moves nothing (${DATABASE_KIND})`, async () => {
  const device = newId('dev')
  const tell = (subjectCreatedAt: Date) =>
    pipe.publish(service.db, { deviceId: device, kind: EventKind.EVENT_KIND_ORDER_FAILED, subjectId: newId('order'), publisher: PAYMENTS, subjectCreatedAt })
  const release = (at: Date) => inTransaction(service.db, (trx) => channels.closeDeviceChannels(trx, device, at))
  const current = async () => (await pipe.assertResumable(service.db, device, 0n, { currentRentalOnly: true })).rental
  const listed = async () => (await pipe.readEvents(service.db, device, 0n, 100, 'current')).map((e) => e.sequence)
  const first = await publish(device)
  const submittedInFirst = new Date()
  const firstEnd = new Date(Date.now() + 2)
  while (Date.now() <= firstEnd.getTime()) await new Promise((resolve) => setImmediate(resolve))
  await release(firstEnd)
  assert.equal(await current(), first.sequence, "the second rental begins after the first rental's events")
  const second = await publish(device)
  const lateOfFirst = await tell(submittedInFirst)
  assert.equal(BigInt(lateOfFirst.rental_floor), 0n, "told after the release, it is still the first rental's")
  assert.deepEqual(await listed(), [second.sequence])
  const submittedInSecond = new Date()
  const secondEnd = new Date(Date.now() + 2)
  while (Date.now() <= secondEnd.getTime()) await new Promise((resolve) => setImmediate(resolve))
  await release(secondEnd)
  await release(firstEnd) // a late redelivery of the first release
  const floor = await current()
  assert.equal(floor, lateOfFirst.sequence, 'the third rental begins after everything stored before its release')
  assert.equal(BigInt((await tell(submittedInSecond)).rental_floor), first.sequence, "the second rental's, though two releases passed")
  assert.equal(BigInt((await tell(submittedInFirst)).rental_floor), -1n, 'older than the rental before: no rental reads it')
  const third = await publish(device)
  assert.deepEqual(await listed(), [third.sequence])
})
