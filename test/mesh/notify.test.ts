// The Notify pipe over real gRPC and mTLS: durable, ordered per device, resumable after a
// reconnect and after a restart, scoped to the instance and terminals with a channel, and a
// stalled subscriber is cut off instead of buffered.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { connect, constants as http2 } from 'node:http2'
import { readFile } from 'node:fs/promises'
import { status as Status } from '@grpc/grpc-js'
import { EventKind, NotifyRequest } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { instanceEvents } from '../../services/instance-events/server.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { RESUBSCRIBE_SPREAD_MS } from '../../services/runtime/streams.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { subscribe } from '../helpers/subscriber.ts'

const DEVICE = { role: 'instance', id: 'dev-notify' } as const
const PHONE = { role: 'terminal', id: 'phone-notify' } as const
const STRANGER = { role: 'terminal', id: 'phone-stranger' } as const
const STREAMS_PER_CALLER = 10

let t: TestMesh
before(async () => {
  t = await startTestMesh({
    services: [instanceEvents],
    env: { CLOUDPAY_SUBSCRIBER_STALL_MS: '2000', CLOUDPAY_SUBSCRIBER_POLL_MS: '60000', CLOUDPAY_MAX_STREAMS_PER_CALLER: String(STREAMS_PER_CALLER) },
  })
  const operator = await t.client('instance-events', OPERATOR)
  await unaryCall(operator, 'openChannel', { requestId: newRequestId(), deviceId: DEVICE.id, terminalId: PHONE.id })
})
after(async () => t?.stop())

const subscribers = () => t.mesh.services.find((s) => s.name === 'instance-events')!.introspect().subscribers

async function publish(kind = EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId = `login-${Math.random().toString(36).slice(2)}`) {
  const instance = await t.client('instance-events', DEVICE)
  return (await unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: DEVICE.id, kind, subjectId })).event!
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('publishing and following', () => {
  test('events are stored with gapless per-device sequences and reach the instance and its terminal, live', async () => {
    const instance = subscribe(await t.client('instance-events', DEVICE), DEVICE.id)
    const terminal = subscribe(await t.client('instance-events', PHONE), DEVICE.id)
    try {
      await waitUntil(() => subscribers() === 2, 'both subscribed')
      const first = await publish()
      const second = await publish(EventKind.EVENT_KIND_PAYMENT_REQUESTED, 'order-1')
      assert.equal(second.sequence, first.sequence + 1n)
      for (const sub of [instance, terminal]) {
        const events = await sub.waitFor(2)
        assert.deepEqual(
          events.map((e) => e.sequence),
          [first.sequence, second.sequence],
        )
        assert.equal(events[1]!.kind, EventKind.EVENT_KIND_PAYMENT_REQUESTED)
        assert.equal(events[1]!.subjectId, 'order-1')
      }
    } finally {
      instance.cancel()
      terminal.cancel()
    }
    await waitUntil(() => subscribers() === 0, 'cancelled streams are released')
  })

  test('a retried publish (same request id) stores the event once', async () => {
    const instance = await t.client('instance-events', DEVICE)
    const request = { requestId: newRequestId(), deviceId: DEVICE.id, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'login-retry' }
    const first = await unaryCall(instance, 'publish', request)
    const again = await unaryCall(instance, 'publish', request)
    assert.equal(again.event!.sequence, first.event!.sequence)
    const next = await publish()
    assert.equal(next.sequence, first.event!.sequence + 1n)
  })

  test('a subscriber that reconnects with its last sequence gets every later event, none twice', async () => {
    const start = (await publish()).sequence
    const sub = subscribe(await t.client('instance-events', DEVICE), DEVICE.id, start)
    for (let i = 0; i < 3; i++) await publish()
    await sub.waitFor(3)
    sub.cancel()
    const last = sub.events.at(-1)!.sequence
    for (let i = 0; i < 4; i++) await publish() // while disconnected
    const resumed = subscribe(await t.client('instance-events', DEVICE), DEVICE.id, last)
    try {
      await resumed.waitFor(4)
      await publish() // and live again
      const all = await resumed.waitFor(5)
      assert.deepEqual(
        all.map((e) => e.sequence),
        [1n, 2n, 3n, 4n, 5n].map((n) => last + n),
      )
    } finally {
      resumed.cancel()
    }
  })

  test('events survive a restart of the service; sequences continue; subscribers resume', async () => {
    const before = await publish()
    await t.mesh.restart('instance-events')
    const sub = subscribe(await t.client('instance-events', PHONE), DEVICE.id, before.sequence - 1n)
    try {
      const after = await publish()
      assert.equal(after.sequence, before.sequence + 1n)
      const events = await sub.waitFor(2)
      assert.deepEqual(
        events.map((e) => e.sequence),
        [before.sequence, after.sequence],
      )
    } finally {
      sub.cancel()
    }
  })

  test('a stopping replica ends its streams UNAVAILABLE (SHUTTING_DOWN) with a RetryInfo delay spread across its subscribers', async () => {
    const subs = await Promise.all(Array.from({ length: 8 }, async () => subscribe(await t.client('instance-events', PHONE), DEVICE.id, 0n)))
    try {
      await Promise.all(subs.map((sub) => sub.waitFor(1)))
      await t.mesh.restart('instance-events')
      const ends = await Promise.all(subs.map((sub) => sub.ended))
      for (const end of ends) {
        assert.equal(end.code, Status.UNAVAILABLE, end.details)
        assert.equal(end.reason, 'SHUTTING_DOWN')
        assert.ok(end.retryAfterMs !== undefined && end.retryAfterMs >= 100 && end.retryAfterMs <= 100 + RESUBSCRIBE_SPREAD_MS, `retry after ${end.retryAfterMs} ms`)
      }
      assert.ok(new Set(ends.map((e) => e.retryAfterMs)).size > 1, 'the returns are spread, not all at once')
    } finally {
      for (const sub of subs) sub.cancel()
    }
  })

  test('a subscriber learns when the events it asks for are beyond the stream', async () => {
    const instance = await t.client('instance-events', DEVICE)
    const sub = subscribe(instance, DEVICE.id, 1_000_000n)
    const { code, details } = await sub.ended
    assert.equal(code, Status.FAILED_PRECONDITION)
    assert.match(details, /beyond the device's newest event/)
  })
})

describe('who may follow and publish', () => {
  test('a terminal without a channel can neither follow nor list the device', async () => {
    const stranger = await t.client('instance-events', STRANGER)
    const sub = subscribe(stranger, DEVICE.id)
    const { code, details } = await sub.ended
    assert.equal(code, Status.PERMISSION_DENIED)
    assert.match(details, /no open channel/)
    await expectStatus(unaryCall(stranger, 'listEvents', { deviceId: DEVICE.id, afterSequence: 0n, pageSize: 0, pageToken: '' }), Status.PERMISSION_DENIED)
  })

  test('an instance follows and publishes only for itself, and only the kinds an instance asks with', async () => {
    const instance = await t.client('instance-events', DEVICE)
    const other = subscribe(instance, 'dev-someone-else')
    assert.equal((await other.ended).code, Status.PERMISSION_DENIED)
    await expectStatus(
      unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: 'dev-someone-else', kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'x' }),
      Status.PERMISSION_DENIED,
    )
    const forged = await expectStatus(
      unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: DEVICE.id, kind: EventKind.EVENT_KIND_LOGIN_VERIFIED, subjectId: 'x' }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(forged.reason, 'KIND_NOT_ALLOWED')
    // Only PaymentManagement tells how an order ended: AccountManagement may not say it took effect.
    const asAccountManagement = await t.client('instance-events', { role: 'service', id: 'account-management' })
    const notEffective = await expectStatus(
      unaryCall(asAccountManagement, 'publish', { requestId: newRequestId(), deviceId: DEVICE.id, kind: EventKind.EVENT_KIND_ORDER_EFFECTIVE, subjectId: 'x' }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(notEffective.reason, 'KIND_NOT_ALLOWED')
    await expectStatus(
      unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: DEVICE.id, kind: EventKind.EVENT_KIND_UNSPECIFIED, subjectId: 'x' }),
      Status.INVALID_ARGUMENT,
      'kind',
    )
  })

  test('closing the channel ends the terminal stream', async () => {
    const operator = await t.client('instance-events', OPERATOR)
    const opened = await unaryCall(operator, 'openChannel', { requestId: newRequestId(), deviceId: DEVICE.id, terminalId: 'phone-brief' })
    const sub = subscribe(await t.client('instance-events', { role: 'terminal', id: 'phone-brief' }), DEVICE.id)
    await waitUntil(() => subscribers() === 1, 'subscribed')
    await unaryCall(operator, 'closeChannel', { requestId: newRequestId(), channelId: opened.channel!.channelId })
    const { code } = await sub.ended
    assert.equal(code, Status.PERMISSION_DENIED)
    await waitUntil(() => subscribers() === 0, 'released')
  })

  test('ListEvents pages through the stored stream in order', async () => {
    const instance = await t.client('instance-events', DEVICE)
    const seen: bigint[] = []
    let pageToken = ''
    do {
      const reply = await unaryCall(instance, 'listEvents', { deviceId: DEVICE.id, afterSequence: 0n, pageSize: 3, pageToken })
      seen.push(...reply.events.map((e) => e.sequence))
      pageToken = reply.nextPageToken
    } while (pageToken)
    assert.ok(seen.length >= 10)
    assert.deepEqual(
      seen,
      seen.map((_, i) => BigInt(i + 1)),
    )
  })
})

describe('backpressure', () => {
  test('a subscriber that stops reading is cut off, not buffered without bound', async () => {
    // A raw HTTP/2 client that never reads: unlike a paused grpc-js client (which keeps reading
    // into memory), it lets flow control push back on the server.
    const paths = await certificateFiles(t.config, PHONE)
    const session = connect(`https://${t.address('instance-events')}`, {
      ca: await readFile(paths.caFile),
      cert: await readFile(paths.certFile),
      key: await readFile(paths.keyFile),
      servername: 'localhost',
      settings: { initialWindowSize: 1024 },
    })
    const body = Buffer.from(NotifyRequest.encode({ deviceId: DEVICE.id, afterSequence: 0n }).finish())
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body])
    frame.writeUInt32BE(body.length, 1)
    const stream = session.request({
      ':method': 'POST',
      ':path': '/cloudpay.events.v1.InstanceEventsService/Notify',
      'content-type': 'application/grpc',
      te: 'trailers',
    })
    stream.end(frame)
    stream.pause()
    stream.on('error', () => undefined) // the reset we expect arrives as an error too
    session.on('error', () => undefined)
    const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0)))
    try {
      await waitUntil(() => subscribers() === 1, 'the raw subscriber is registered')
      let last = 0n
      for (let i = 0; i < 300; i++) last = (await publish(EventKind.EVENT_KIND_PAYMENT_REQUESTED, `order-flood-${i}`)).sequence
      await waitUntil(() => subscribers() === 0, 'the stalled subscriber is cut off', 15_000)
      assert.equal(await closed, http2.NGHTTP2_ENHANCE_YOUR_CALM)
      // A well-behaved subscriber still gets everything.
      const sub = subscribe(await t.client('instance-events', PHONE), DEVICE.id)
      try {
        const events = await sub.waitFor(Number(last))
        assert.equal(events.at(-1)!.subjectId, 'order-flood-299')
        assert.deepEqual(
          events.map((e) => e.sequence),
          events.map((_, i) => BigInt(i + 1)),
          'every event once, in order',
        )
      } finally {
        sub.cancel()
      }
    } finally {
      session.destroy()
    }
  })
})

describe('one caller, many streams', () => {
  // Bounded: without the limit the one-more stream is served and never ends.
  test('a caller holds at most CLOUDPAY_MAX_STREAMS_PER_CALLER streams; one more is RESOURCE_EXHAUSTED, others are served, an ended one frees its place', { timeout: 30_000 }, async () => {
    const hog = { role: 'instance', id: 'dev-hog' } as const
    const client = await t.client('instance-events', hog)
    const before = subscribers() ?? 0
    const held = Array.from({ length: STREAMS_PER_CALLER }, () => subscribe(client, hog.id))
    try {
      await waitUntil(() => subscribers() === before + STREAMS_PER_CALLER, 'every allowed stream is served')
      const refused = await subscribe(client, hog.id).ended
      assert.equal(refused.code, Status.RESOURCE_EXHAUSTED, refused.details)
      assert.equal(refused.reason, 'TOO_MANY_STREAMS')
      // Another caller is not held back, and the hog's own streams still deliver.
      const other = subscribe(await t.client('instance-events', DEVICE), DEVICE.id, (await publish()).sequence - 1n)
      try {
        await other.waitFor(1)
      } finally {
        other.cancel()
      }
      const instance = await t.client('instance-events', hog)
      await unaryCall(instance, 'publish', { requestId: newRequestId(), deviceId: hog.id, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: 'login-hog' })
      await Promise.all(held.map((sub) => sub.waitFor(1)))
      held.pop()!.cancel()
      await waitUntil(() => subscribers() === before + STREAMS_PER_CALLER - 1, 'the cancelled stream is gone')
      const again = subscribe(client, hog.id)
      held.push(again)
      await again.waitFor(1)
    } finally {
      for (const sub of held) sub.cancel()
    }
  })
})
