// The rental boundary (services/runtime/rental-boundary.ts): an instance caller sees and replays
// only what belongs to its device's current rental; a terminal only what belongs to its current
// enrolment. Each test acts in one rental (or enrolment), checks the actor still sees it, ends it
// (re-rent to another person, or remove and enrol again), and checks the next one finds nothing:
// NOT_FOUND as for what never existed, nothing on the streams, no replayed answer. Over real gRPC,
// mTLS and a real database.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { Gesture } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { followTerminal, subscribe } from '../helpers/subscriber.ts'

let t: TestMesh
let f: ReturnType<typeof flows>
before(async () => {
  t = await startTestMesh({ env: { CLOUDPAY_RETRY_BASE_MS: '100', CLOUDPAY_RETRY_MAX_MS: '500' } })
  f = flows(t, OPERATOR)
})
after(async () => t?.stop())

let people = 0
/** A person with a cloud account and a phone with a channel to `device`, which is rented to them. */
async function renter(device: string, register = true) {
  const n = ++people
  const person = { account: `rerent${n}`, password: `rerent-${n}-password`, phone: `rerent-phone-${n}`, device }
  if (register) await f.setUp(person.account, person.password, device, person.phone)
  return person
}
type Person = Awaited<ReturnType<typeof renter>>

/** Rents `device` to a new person (replacing the current rental) and connects their phone. */
async function reRent(device: string): Promise<Person> {
  const next = await renter(device, false)
  const am = await t.client('account-management', OPERATOR)
  await unaryCall(am, 'registerCloudAccount', { requestId: newRequestId(), accountId: next.account, password: next.password })
  const reply = await unaryCall(am, 'assignInstance', { requestId: newRequestId(), deviceId: device, accountId: next.account })
  assert.equal(reply.grantsEnded, true, 'every service acknowledged the end of the previous rental')
  await unaryCall(await t.client('instance-events', OPERATOR), 'openChannel', { requestId: newRequestId(), deviceId: device, terminalId: next.phone })
  return next
}

async function order(p: Person, sessionToken: string) {
  const app = await t.client('app-service', instance(p.device))
  const { order: appOrder } = await unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: p.device, sessionToken, itemId: 'gem-pack-100', quantity: 1 })
  const pm = await t.client('payment-management', instance(p.device))
  return (await unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: p.device, appOrderId: appOrder!.appOrderId })).order!
}

describe('the next renter of a device', () => {
  test('sees no ORDER_FAILED of the orders the release cancelled; the released instance is still told', async () => {
    const old = await renter('rerent-dev-1')
    const session = await f.logIn(old.device, old.phone, old.password)
    const cancelled = await order(old, session.sessionToken)
    const released = subscribe(await t.client('instance-events', instance(old.device)), old.device)
    try {
      await reRent(old.device)
      // The released instance's own stream is told (so the event is stored by now).
      await released.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_FAILED && e.subjectId === cancelled.orderId)
      const next = instance(old.device)
      const pipe = await t.client('instance-events', next)
      const fresh = subscribe(pipe, old.device)
      try {
        // Something of the new rental, so the stream has something to show first.
        const login = await f.startLogin(old.device)
        await fresh.waitForEvent((e) => e.subjectId === login.loginId)
        assert.deepEqual(
          fresh.events.filter((e) => e.subjectId === cancelled.orderId),
          [],
          'the next renter follows no event about the previous renter order',
        )
        const { events } = await unaryCall(pipe, 'listEvents', { deviceId: old.device, afterSequence: 0n, pageSize: 0, pageToken: '' })
        assert.ok(events.some((e) => e.subjectId === login.loginId))
        assert.deepEqual(
          events.filter((e) => e.subjectId === cancelled.orderId),
          [],
          'the next renter lists no event about the previous renter order',
        )
        // ...and the released instance's stream is not the next renter's either.
        assert.deepEqual(
          released.events.filter((e) => e.subjectId === login.loginId),
          [],
          "the released instance's stream shows nothing of the next rental",
        )
      } finally {
        fresh.cancel()
      }
    } finally {
      released.cancel()
    }
  })

  test("cannot act on the previous renter's orders (CancelOrder, PrepayOrder, ClaimOrder): ORDER_NOT_FOUND as for none", async () => {
    const old = await renter('rerent-dev-6')
    const session = await f.logIn(old.device, old.phone, old.password)
    const theirs = await order(old, session.sessionToken)
    const mine = await order(old, session.sessionToken)
    const before = await t.client('payment-management', instance(old.device))
    assert.equal((await unaryCall(before, 'cancelOrder', { requestId: newRequestId(), deviceId: old.device, orderId: mine.orderId, reason: '' })).order!.orderId, mine.orderId, 'before the re-rent the instance could')

    const next = await reRent(old.device)
    await unaryCall(await t.client('account-management', terminal(next.phone)), 'enrollTerminal', { requestId: newRequestId(), accountId: next.account, password: next.password, displayName: 'phone' })
    for (const orderId of [theirs.orderId, mine.orderId]) {
      const byInstance = await t.client('payment-management', instance(old.device))
      const byPhone = await t.client('payment-management', terminal(next.phone))
      // One call at a time: a refusal is never left unawaited while another is checked.
      for (const attempt of [
        () => unaryCall(byInstance, 'cancelOrder', { requestId: newRequestId(), deviceId: old.device, orderId, reason: '' }),
        () => unaryCall(byPhone, 'prepayOrder', { requestId: newRequestId(), deviceId: old.device, orderId, bindingId: '' }),
        () => unaryCall(byPhone, 'claimOrder', { requestId: newRequestId(), orderId, gesture: Gesture.GESTURE_TAP }),
      ]) {
        assert.equal((await expectStatus(attempt(), Status.NOT_FOUND)).reason, 'ORDER_NOT_FOUND', `${orderId}: ${attempt.toString().slice(0, 60)}`)
      }
    }
    // Its app orders too: submitted again, one is answered as an app order that never existed.
    const pm = await t.client('payment-management', instance(old.device))
    for (const appOrderId of [theirs.appOrderId, 'never-placed-app-order']) {
      const refused = await expectStatus(unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: old.device, appOrderId }), Status.NOT_FOUND)
      assert.equal(refused.reason, 'ORDER_NOT_FOUND', appOrderId)
    }
  })

  test("cannot read the previous renter's logins (GetLogin, RedeemLogin, VerifyLogin); before the re-rent they could", async () => {
    const old = await renter('rerent-dev-2')
    const pending = await f.startLogin(old.device)
    const verified = await f.startLogin(old.device)
    await f.verify(old.device, old.phone, verified.loginId, verified.bindingCode, old.password)
    const am = await t.client('account-management', instance(old.device))
    assert.equal((await unaryCall(am, 'getLogin', { deviceId: old.device, loginId: pending.loginId })).login!.state, LoginState.LOGIN_STATE_PENDING)
    assert.equal((await unaryCall(am, 'getLogin', { deviceId: old.device, loginId: verified.loginId })).login!.state, LoginState.LOGIN_STATE_VERIFIED)

    const next = await reRent(old.device)
    for (const loginId of [pending.loginId, verified.loginId]) {
      assert.equal((await expectStatus(unaryCall(am, 'getLogin', { deviceId: old.device, loginId }), Status.NOT_FOUND)).reason, 'LOGIN_NOT_FOUND', 'the instance reads it')
      const phone = await t.client('account-management', terminal(next.phone))
      assert.equal((await expectStatus(unaryCall(phone, 'getLogin', { deviceId: old.device, loginId }), Status.NOT_FOUND)).reason, 'LOGIN_NOT_FOUND', "the next renter's phone reads it")
    }
    assert.equal((await expectStatus(f.redeem(old.device, verified.loginId), Status.NOT_FOUND)).reason, 'LOGIN_NOT_FOUND')
    const verify = await expectStatus(f.verify(old.device, next.phone, pending.loginId, pending.bindingCode, next.password), Status.NOT_FOUND)
    assert.equal(verify.reason, 'LOGIN_NOT_FOUND')
    // The next renter's own logins are theirs to read.
    const mine = await f.startLogin(old.device)
    assert.equal((await unaryCall(am, 'getLogin', { deviceId: old.device, loginId: mine.loginId })).login!.state, LoginState.LOGIN_STATE_PENDING)
  })

  test("replays none of the previous rental's answers for a request id the instance uses again", async () => {
    const old = await renter('rerent-dev-3')
    const session = await f.logIn(old.device, old.phone, old.password)
    const am = await t.client('account-management', instance(old.device))
    const app = await t.client('app-service', instance(old.device))
    const pm = await t.client('payment-management', instance(old.device))
    const pipe = await t.client('instance-events', instance(old.device))
    const ids = { start: newRequestId(), create: newRequestId(), submit: newRequestId(), publish: newRequestId() }
    const publish = (subjectId: string) => unaryCall(pipe, 'publish', { requestId: ids.publish, deviceId: old.device, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId })
    const start = () => unaryCall(am, 'startLogin', { requestId: ids.start, deviceId: old.device })
    const create = (sessionToken: string) => unaryCall(app, 'createOrder', { requestId: ids.create, deviceId: old.device, sessionToken, itemId: 'gem-pack-100', quantity: 1 })
    const submit = (appOrderId: string) => unaryCall(pm, 'submitOrder', { requestId: ids.submit, deviceId: old.device, appOrderId })
    const first = { login: (await start()).login!, appOrder: (await create(session.sessionToken)).order! }
    const submitted = (await submit(first.appOrder.appOrderId)).order!
    // Within the rental a retry replays.
    assert.equal((await start()).login!.loginId, first.login.loginId)
    assert.equal((await create(session.sessionToken)).order!.appOrderId, first.appOrder.appOrderId)
    assert.equal((await submit(first.appOrder.appOrderId)).order!.orderId, submitted.orderId)
    const published = (await publish(first.login.loginId)).event!
    assert.equal((await publish(first.login.loginId)).event!.sequence, published.sequence)

    const next = await reRent(old.device)
    const login = (await start()).login!
    assert.notEqual(login.loginId, first.login.loginId, "StartLogin replays the previous rental's login")
    assert.equal(login.state, LoginState.LOGIN_STATE_PENDING)
    const nextSession = await f.logIn(next.device, next.phone, next.password)
    const appOrder = (await create(nextSession.sessionToken)).order!
    assert.notEqual(appOrder.appOrderId, first.appOrder.appOrderId, "CreateOrder replays the previous rental's order")
    const resubmitted = (await submit(appOrder.appOrderId)).order!
    assert.notEqual(resubmitted.orderId, submitted.orderId)
    assert.equal(resubmitted.appOrderId, appOrder.appOrderId, 'a new request of the new rental, not REQUEST_ID_REUSED')
    const announced = (await publish(login.loginId)).event!
    assert.equal(announced.subjectId, login.loginId, 'Publish: a new request of the new rental, not REQUEST_ID_REUSED')
    assert.ok(announced.sequence > published.sequence)
    // And within the new rental a retry replays again.
    assert.equal((await start()).login!.loginId, login.loginId)
    assert.equal((await publish(login.loginId)).event!.sequence, announced.sequence)
  })
})

describe('a late end-of-sessions hand-off', () => {
  test("leaves the next rental's stored answers replaying: the rental began at the release, not at the hand-off's arrival", async () => {
    // The release of an earlier assignment happened here; its EndDeviceSessions lands only after
    // the next renter's instance has already placed an order at AppService (AppService was
    // unreachable meanwhile, the outbox retried).
    const releasedAt = new Date()
    const next = await renter('rerent-dev-7')
    const session = await f.logIn(next.device, next.phone, next.password)
    const app = await t.client('app-service', instance(next.device))
    const requestId = newRequestId()
    const create = () => unaryCall(app, 'createOrder', { requestId, deviceId: next.device, sessionToken: session.sessionToken, itemId: 'gem-pack-100', quantity: 1 })
    const placed = (await create()).order!
    const handOff = await t.client('app-service', { role: 'service', id: 'account-management' })
    const late = { requestId: newRequestId(), deviceId: next.device, assignmentId: newRequestId(), endTime: releasedAt }
    assert.deepEqual(await unaryCall(handOff, 'endDeviceSessions', late), { endedSessions: 0, rejectedOrders: 0 })
    assert.equal((await create()).order!.appOrderId, placed.appOrderId, "a retry of the next rental's CreateOrder replays (it ran again)")
    assert.deepEqual(await unaryCall(handOff, 'endDeviceSessions', late), { endedSessions: 0, rejectedOrders: 0 }, 'the redelivery replays')
  })
})

describe('a terminal enrolled again', () => {
  test('follows none of its earlier enrolment; before its removal it did', async () => {
    const owner = await renter('rerent-dev-4')
    const session = await f.logIn(owner.device, owner.phone, owner.password)
    const roaming = 'rerent-roaming-phone'
    // The same request id both times: the second enrolment is a new request, not the first one's replay.
    const requestId = newRequestId()
    const enroll = async (p: Person) =>
      (await unaryCall(await t.client('account-management', terminal(roaming)), 'enrollTerminal', { requestId, accountId: p.account, password: p.password, displayName: 'phone' })).terminal!
    const first = await enroll(owner)
    assert.equal((await enroll(owner)).enrollmentId, first.enrollmentId, 'within the enrolment a retry replays')
    const pipe = await t.client('instance-events', terminal(roaming))
    const earlier = followTerminal(pipe)
    let pushed: string
    try {
      pushed = (await order(owner, session.sessionToken)).orderId
      await earlier.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_PAYMENT_PUSHED && e.subjectId === pushed)
      const removed = await unaryCall(await t.client('account-management', OPERATOR), 'removeTerminal', { requestId: newRequestId(), terminalId: roaming })
      assert.equal(removed.grantsEnded, true)
      await earlier.ended
    } finally {
      earlier.cancel()
    }

    const other = await renter('rerent-dev-5')
    const otherSession = await f.logIn(other.device, other.phone, other.password)
    const second = await enroll(other)
    assert.equal(second.accountId, other.account)
    assert.notEqual(second.enrollmentId, first.enrollmentId)
    const again = followTerminal(pipe)
    try {
      const mine = (await order(other, otherSession.sessionToken)).orderId
      await again.waitForEvent((e) => e.subjectId === mine)
      assert.deepEqual(
        again.events.map((e) => e.subjectId),
        [mine],
        'the earlier enrolment: its pushed order and its removal are not this enrolment history',
      )
    } finally {
      again.cancel()
    }
  })

  test('lists none of its closed channels from before its removal (ListChannels); the back office still does', async () => {
    const owner = await renter('rerent-dev-8')
    const moving = 'rerent-moving-phone'
    const operatorPipe = await t.client('instance-events', OPERATOR)
    const open = async (deviceId: string) => (await unaryCall(operatorPipe, 'openChannel', { requestId: newRequestId(), deviceId, terminalId: moving })).channel!
    const close = async (channelId: string) => unaryCall(operatorPipe, 'closeChannel', { requestId: newRequestId(), channelId })
    const listed = async (identity: Parameters<TestMesh['client']>[1]) =>
      (await unaryCall(await t.client('instance-events', identity), 'listChannels', { terminalId: moving, deviceId: '', includeClosed: true, pageSize: 0, pageToken: '' })).channels.map(
        (c) => c.channelId,
      )
    const enroll = async (p: Person) =>
      unaryCall(await t.client('account-management', terminal(moving)), 'enrollTerminal', { requestId: newRequestId(), accountId: p.account, password: p.password, displayName: 'phone' })
    const before = await open(owner.device)
    await close(before.channelId)
    await enroll(owner)
    const during = await open(owner.device)
    await close(during.channelId)
    const stillOpen = await open('rerent-dev-8b')
    assert.deepEqual((await listed(terminal(moving))).sort(), [before.channelId, during.channelId, stillOpen.channelId].sort(), 'before its removal it lists them all')
    const removed = await unaryCall(await t.client('account-management', OPERATOR), 'removeTerminal', { requestId: newRequestId(), terminalId: moving })
    assert.equal(removed.grantsEnded, true)

    const other = await renter('rerent-dev-9')
    await enroll(other)
    const mine = await open(other.device)
    await close(mine.channelId)
    assert.deepEqual(
      (await listed(terminal(moving))).sort(),
      [mine.channelId, stillOpen.channelId].sort(),
      'its own closed channel of now and its open one; none closed under the earlier enrolment',
    )
    assert.deepEqual((await listed(OPERATOR)).sort(), [before.channelId, during.channelId, stillOpen.channelId, mine.channelId].sort(), 'the back office reads everything')
  })

  test("a late TERMINAL_REMOVED hides only what closed before the removal itself (occur_time), not before the hand-off's arrival", async () => {
    const owner = await renter('rerent-dev-10')
    const late = 'rerent-late-phone'
    const operatorPipe = await t.client('instance-events', OPERATOR)
    const removedAt = new Date()
    // Closed after the removal, before its hand-off lands: of no ended enrolment.
    const { channel } = await unaryCall(operatorPipe, 'openChannel', { requestId: newRequestId(), deviceId: owner.device, terminalId: late })
    await unaryCall(operatorPipe, 'closeChannel', { requestId: newRequestId(), channelId: channel!.channelId })
    const handOff = await t.client('instance-events', { role: 'service', id: 'account-management' })
    const removal = { requestId: newRequestId(), terminalIds: [late], kind: EventKind.EVENT_KIND_TERMINAL_REMOVED, subjectId: newRequestId(), occurTime: removedAt }
    await unaryCall(handOff, 'publishToTerminals', removal)
    const list = await unaryCall(await t.client('instance-events', terminal(late)), 'listChannels', { terminalId: '', deviceId: '', includeClosed: true, pageSize: 0, pageToken: '' })
    assert.deepEqual(
      list.channels.map((c) => c.channelId),
      [channel!.channelId],
      'closed after the removal: listed',
    )
  })
})
