// The account's own terminals (DESIGN "The account's terminals"): terminals enrol in a cloud
// account by proving its password, an order an instance of the account submits is pushed to each
// enrolled terminal's own durable stream (and through the push relay), one terminal claims it by a
// gesture and pays it with no channel at all, the others are told; over real gRPC, mTLS and a
// real database.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { EventKind, type TerminalEvent } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { Gesture, OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { TransactionState } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'
import { followTerminal, type Subscriber } from '../helpers/subscriber.ts'

const PAYMENT_PASSWORD = 'pay-secret-2718'
const MAX_FAILURES = 3
const MAX_TERMINALS = 4

let t: TestMesh
before(async () => {
  t = await startTestMesh({
    env: {
      CLOUDPAY_RETRY_BASE_MS: '100',
      CLOUDPAY_RETRY_MAX_MS: '500',
      CLOUDPAY_LOGIN_MAX_FAILURES: String(MAX_FAILURES),
      CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT: String(MAX_TERMINALS),
      CLOUDPAY_CLAIM_GESTURES: 'tap,slide',
    },
  })
  const platform = await t.client('payment-platform', OPERATOR)
  await unaryCall(platform, 'createMerchantAccount', { requestId: newRequestId(), platformId: 'alphapay', merchantId: 'demo-shop', collectionAccount: 'SHOPALPHA0001', currencyCode: 'USD' })
})
after(async () => t?.stop())

let people = 0
/**
 * A logged-in person: a cloud account and an instance, logged in through a channel terminal
 * (the only terminal with a channel, which also binds a payer account), and `phones` terminals
 * enrolled in the account that have no channel to anything.
 */
async function person(phones = 2) {
  const n = ++people
  const accountId = `pusher${n}`
  const password = `pusher-${n}-password`
  const device = `push-dev-${n}`
  const loginPhone = `push-login-${n}`
  const f = flows(t, OPERATOR)
  await f.setUp(accountId, password, device, loginPhone)
  const session = await f.logIn(device, loginPhone, password)
  const payer = `PUSHPAYER000${n}`
  await unaryCall(await t.client('payment-platform', OPERATOR), 'createPayerAccount', {
    requestId: newRequestId(),
    platformId: 'alphapay',
    payerAccount: payer,
    paymentPassword: PAYMENT_PASSWORD,
    openingBalance: { currencyCode: 'USD', amountMinor: 100_000n },
  })
  await unaryCall(await t.client('account-management', terminal(loginPhone)), 'bindPaymentAccount', {
    requestId: newRequestId(),
    deviceId: device,
    platformId: 'alphapay',
    payerAccount: payer,
    makeDefault: false,
  })
  const enrolled: string[] = []
  for (let i = 0; i < phones; i++) {
    const phone = `push-phone-${n}-${i}`
    await enroll(phone, accountId, password, `phone ${i}`)
    enrolled.push(phone)
  }
  return { n, accountId, password, device, loginPhone, session, phones: enrolled }
}

async function enroll(terminalId: string, accountId: string, password: string, displayName = terminalId, requestId = newRequestId()) {
  const am = await t.client('account-management', terminal(terminalId))
  return (await unaryCall(am, 'enrollTerminal', { requestId, accountId, password, displayName })).terminal!
}

/** The instance orders at the application and submits the order (payment steps 1-2). */
async function order(p: Awaited<ReturnType<typeof person>>) {
  const app = await t.client('app-service', instance(p.device))
  const { order: appOrder } = await unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: p.device, sessionToken: p.session.sessionToken, itemId: 'gem-pack-550', quantity: 1 })
  const pm = await t.client('payment-management', instance(p.device))
  return (await unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: p.device, appOrderId: appOrder!.appOrderId })).order!
}

async function follow(terminalId: string, afterSequence = 0n): Promise<Subscriber<TerminalEvent>> {
  return followTerminal(await t.client('instance-events', terminal(terminalId)), afterSequence)
}

/** How a stream ended, within a deadline. */
function endOf(stream: Subscriber<TerminalEvent>, timeoutMs = 10_000) {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`the stream did not end within ${timeoutMs} ms`)), timeoutMs)))
  return Promise.race([stream.ended, late]).finally(() => clearTimeout(timer))
}

const pushedFor = (orderId: string) => (e: TerminalEvent) => e.kind === EventKind.EVENT_KIND_PAYMENT_PUSHED && e.subjectId === orderId
const traceIdOf = (traceParent: string) => traceParent.split('-')[1]

async function claim(terminalId: string, orderId: string, gesture = Gesture.GESTURE_TAP, requestId = newRequestId()) {
  const pm = await t.client('payment-management', terminal(terminalId))
  return (await unaryCall(pm, 'claimOrder', { requestId, orderId, gesture })).order!
}

async function orderState(orderId: string) {
  return (await unaryCall(await t.client('payment-management', OPERATOR), 'getOrder', { orderId })).order!
}

/** Polls with a deadline (the state changes in the background, through outboxes). */
async function eventually<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await read()
    if (done(value)) return value
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

async function wakesOf(terminalId: string) {
  const relay = await t.client('push-relay', OPERATOR)
  return (await unaryCall(relay, 'listWakes', { terminalId, pageSize: 0, pageToken: '' })).wakes
}

describe('the account terminals', { timeout: 180_000 }, () => {
  test('an order is pushed to both enrolled terminals in its trace and woken through the relay; a tap claims it, the other terminal is told', async () => {
    const p = await person(2)
    const [a, b] = p.phones as [string, string]
    const streamA = await follow(a)
    const streamB = await follow(b)
    try {
      const submitted = await order(p)
      const pushedA = await streamA.waitForEvent(pushedFor(submitted.orderId))
      const pushedB = await streamB.waitForEvent(pushedFor(submitted.orderId))
      assert.equal(pushedA.terminalId, a)
      assert.equal(pushedB.terminalId, b)
      for (const pushed of [pushedA, pushedB]) assert.equal(traceIdOf(pushed.traceParent), traceIdOf(submitted.traceParent), "the push continues the order's trace")

      // The development relay recorded one wake per terminal, asked by PaymentManagement, in the order's trace.
      for (const phone of [a, b]) {
        const wakes = await eventually(`wakes of ${phone}`, () => wakesOf(phone), (w) => w.length > 0)
        assert.deepEqual(
          wakes.map((w) => [w.kind, w.subjectId, w.requestedBy]),
          [[EventKind.EVENT_KIND_PAYMENT_PUSHED, submitted.orderId, 'service/payment-management']],
        )
      }
      const wakeSpans = t.spans.getFinishedSpans().filter((s) => s.name === 'cloudpay.push.v1.PushRelayService/Wake')
      assert.ok(wakeSpans.some((s) => s.spanContext().traceId === traceIdOf(submitted.traceParent)), 'the wakes are in the order trace')

      const claimed = await claim(a, submitted.orderId, Gesture.GESTURE_TAP)
      assert.equal(claimed.state, OrderState.ORDER_STATE_FETCHED)
      assert.equal(claimed.claimedByTerminalId, a)
      assert.equal(claimed.claimGesture, Gesture.GESTURE_TAP)
      assert.ok(claimed.claimTime)
      const elsewhere = await streamB.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE)
      assert.equal(elsewhere.subjectId, submitted.orderId)
      assert.ok(!streamA.events.some((e) => e.kind === EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE), 'the claimer is not told it lost')

      // Claimed: nobody else may claim it, the channel terminal cannot fetch it, and a retry of the claim is the same answer.
      assert.equal((await expectStatus(claim(b, submitted.orderId), Status.FAILED_PRECONDITION)).reason, 'ORDER_ALREADY_CLAIMED')
      const channelPm = await t.client('payment-management', terminal(p.loginPhone))
      assert.equal((await expectStatus(unaryCall(channelPm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device }), Status.NOT_FOUND)).reason, 'NO_ORDER_WAITING')
      assert.equal((await claim(a, submitted.orderId, Gesture.GESTURE_SLIDE)).claimGesture, Gesture.GESTURE_TAP, 'the first claim stands')
      // A gesture CLOUDPAY_CLAIM_GESTURES does not accept is refused, naming the field.
      const lift = await expectStatus(claim(b, submitted.orderId, Gesture.GESTURE_LIFT), Status.INVALID_ARGUMENT)
      assert.match(lift.error.details, /gesture: must be one of GESTURE_TAP, GESTURE_SLIDE/)
    } finally {
      streamA.cancel()
      streamB.cancel()
    }
  })

  test('concurrent claims from every terminal of the account: exactly one wins', async () => {
    const p = await person(MAX_TERMINALS)
    const submitted = await order(p)
    const outcomes = await Promise.allSettled(p.phones.map((phone) => claim(phone, submitted.orderId, Gesture.GESTURE_SLIDE)))
    const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [p.phones[i]] : []))
    assert.equal(won.length, 1, `one winner: ${JSON.stringify(outcomes.map((o) => o.status))}`)
    for (const outcome of outcomes) {
      if (outcome.status === 'rejected') assert.equal((outcome.reason as { code: Status }).code, Status.FAILED_PRECONDITION)
    }
    const stored = await orderState(submitted.orderId)
    assert.equal(stored.claimedByTerminalId, won[0])
    assert.equal(stored.state, OrderState.ORDER_STATE_FETCHED)
  })

  test('a terminal of another account may not claim the order and receives nothing; an unenrolled one may not follow a stream', async () => {
    const p = await person(1)
    const stranger = await person(1)
    const strangerStream = await follow(stranger.phones[0]!)
    const ownStream = await follow(p.phones[0]!)
    try {
      const submitted = await order(p)
      await ownStream.waitForEvent(pushedFor(submitted.orderId))
      // The push is done once the account's terminal was woken: the stranger was not in it.
      await eventually('the wake', () => wakesOf(p.phones[0]!), (w) => w.some((x) => x.subjectId === submitted.orderId))
      const refused = await expectStatus(claim(stranger.phones[0]!, submitted.orderId), Status.PERMISSION_DENIED)
      assert.equal(refused.reason, 'NOT_ENROLLED_FOR_ORDER')
      const strangerPm = await t.client('payment-management', terminal(stranger.phones[0]!))
      assert.equal(
        (await expectStatus(unaryCall(strangerPm, 'getOrder', { orderId: submitted.orderId }), Status.PERMISSION_DENIED)).reason,
        'NO_CHANNEL',
      )
      assert.deepEqual(strangerStream.events, [], 'nothing on the stranger terminal stream')
      assert.deepEqual(await wakesOf(stranger.phones[0]!), [], 'no wake for the stranger terminal')
      assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_SUBMITTED)
    } finally {
      strangerStream.cancel()
      ownStream.cancel()
    }
    const nobody = await follow('push-unenrolled')
    const ended = await endOf(nobody)
    assert.equal(ended.code, Status.PERMISSION_DENIED)
    assert.equal(ended.reason, 'NOT_ENROLLED')
  })

  test('the claimer prepays and pays with no channel at all; the order takes effect', async () => {
    const p = await person(2)
    const [claimer, other] = p.phones as [string, string]
    const submitted = await order(p)
    await claim(claimer, submitted.orderId)
    // The other enrolled terminal never claimed it and has no channel: it may not act for the order.
    const otherPm = await t.client('payment-management', terminal(other))
    await expectStatus(unaryCall(otherPm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, bindingId: '' }), Status.PERMISSION_DENIED)

    const pm = await t.client('payment-management', terminal(claimer))
    const { order: awaiting, platformId, serialNumber } = await unaryCall(pm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, bindingId: '' })
    assert.equal(awaiting!.state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
    // Only the claimer may pay the prepay made for it.
    const otherPlatform = await t.client('payment-platform', terminal(other))
    await expectStatus(unaryCall(otherPlatform, 'pay', { requestId: newRequestId(), platformId, serialNumber, paymentPassword: PAYMENT_PASSWORD }), Status.PERMISSION_DENIED)
    const platform = await t.client('payment-platform', terminal(claimer))
    const { transaction } = await unaryCall(platform, 'pay', { requestId: newRequestId(), platformId, serialNumber, paymentPassword: PAYMENT_PASSWORD })
    assert.equal(transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED)
    await eventually('the order', () => orderState(submitted.orderId), (o) => o.state === OrderState.ORDER_STATE_EFFECTIVE)
    assert.equal((await unaryCall(pm, 'getOrder', { orderId: submitted.orderId })).order!.state, OrderState.ORDER_STATE_EFFECTIVE, 'the claimer reads its order')
    const channels = await unaryCall(await t.client('instance-events', OPERATOR), 'listChannels', { terminalId: claimer, deviceId: '', includeClosed: true, pageSize: 0, pageToken: '' })
    assert.deepEqual(channels.channels, [], 'the claimer never had a channel')
    for (const secret of [PAYMENT_PASSWORD, p.password]) assert.deepEqual(await findSecret(t, secret), [], `${secret} leaks nowhere`)
  })

  test('a removed terminal is cut off mid-stream, its pending claim ends, and it cannot follow again', async () => {
    const p = await person(2)
    const [removed, remover] = p.phones as [string, string]
    const stream = await follow(removed)
    const submitted = await order(p)
    await stream.waitForEvent(pushedFor(submitted.orderId))
    await claim(removed, submitted.orderId)

    const am = await t.client('account-management', terminal(remover))
    const reply = await unaryCall(am, 'removeTerminal', { requestId: newRequestId(), terminalId: removed })
    assert.equal(reply.terminal!.terminalId, removed)
    assert.equal(reply.grantsEnded, true, 'stream and claims ended before the reply')
    const ended = await endOf(stream)
    assert.equal(ended.code, Status.PERMISSION_DENIED)
    assert.equal(ended.reason, 'TERMINAL_REMOVED')
    const last = stream.events[stream.events.length - 1]!
    assert.equal(last.kind, EventKind.EVENT_KIND_TERMINAL_REMOVED)
    assert.equal(last.subjectId, reply.terminal!.enrollmentId)

    // Its claim ended with it: the order was cancelled, and it may not act for it any more.
    const cancelled = await orderState(submitted.orderId)
    assert.equal(cancelled.state, OrderState.ORDER_STATE_CANCELLED)
    const pm = await t.client('payment-management', terminal(removed))
    await expectStatus(unaryCall(pm, 'getOrder', { orderId: submitted.orderId }), Status.PERMISSION_DENIED)
    const again = await endOf(await follow(removed))
    assert.equal(again.reason, 'NOT_ENROLLED')

    // The account's terminals no longer list it; enrolled again, it follows a new enrolment: the
    // earlier enrolment's pushes and removal are not its history (rental-boundary.ts).
    const { terminals } = await unaryCall(am, 'listAccountTerminals', { accountId: '', pageSize: 0, pageToken: '' })
    assert.deepEqual(
      terminals.map((x) => x.terminalId),
      [remover],
    )
    const reenrolled = await enroll(removed, p.accountId, p.password)
    assert.notEqual(reenrolled.enrollmentId, reply.terminal!.enrollmentId)
    const resumed = await follow(removed, last.sequence - 1n)
    try {
      const next = await order(p)
      await resumed.waitForEvent(pushedFor(next.orderId))
      assert.deepEqual(
        resumed.events.map((e) => e.subjectId),
        [next.orderId],
        'resumed from before the removal, it starts at its new enrolment',
      )
    } finally {
      resumed.cancel()
    }
  })

  test('a terminal resumes its stream after reconnecting and after InstanceEvents restarts: every event once, in order', async () => {
    const p = await person(1)
    const phone = p.phones[0]!
    const first = await follow(phone)
    const one = await order(p)
    const pushedOne = await first.waitForEvent(pushedFor(one.orderId))
    first.cancel()
    await endOf(first)

    const two = await order(p)
    const second = await follow(phone, pushedOne.sequence)
    const pushedTwo = await second.waitForEvent(pushedFor(two.orderId))
    assert.equal(second.events[0]!.sequence, pushedOne.sequence + 1n, 'the next one, none twice')
    assert.equal(pushedTwo.sequence, pushedOne.sequence + 1n)

    // A restart ends the stream; an order submitted meanwhile is pushed once InstanceEvents is back.
    let three: Awaited<ReturnType<typeof order>> | undefined
    await t.mesh.restart('instance-events', async () => {
      three = await order(p)
    })
    const endedByRestart = await endOf(second)
    assert.notEqual(endedByRestart.code, Status.OK)
    const third = await follow(phone, pushedTwo.sequence)
    try {
      const pushedThree = await third.waitForEvent(pushedFor(three!.orderId), 20_000)
      assert.equal(pushedThree.sequence, pushedTwo.sequence + 1n)
      assert.deepEqual(
        third.events.map((e) => e.sequence),
        [pushedTwo.sequence + 1n],
      )
    } finally {
      third.cancel()
    }
  })

  test('enrolment: a wrong password counts towards the lock as a login does; one account at a time; bounded per account; listed by the account', async () => {
    const f = flows(t, OPERATOR)
    const accounts = await t.client('account-management', OPERATOR)
    await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'locked-acct', password: 'locked-password' })
    await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'other-acct', password: 'other-password' })
    for (let i = 1; i <= MAX_FAILURES; i++) {
      const wrong = await expectStatus(enroll('guessing-phone', 'locked-acct', `guess-${i}`), Status.PERMISSION_DENIED)
      assert.equal(wrong.reason, 'PASSWORD_WRONG')
    }
    // Locked now, for the account and for the terminal: even the right password is refused.
    assert.equal((await expectStatus(enroll('guessing-phone', 'locked-acct', 'locked-password'), Status.RESOURCE_EXHAUSTED)).reason, 'LOGIN_LOCKED')
    assert.equal((await expectStatus(enroll('honest-phone', 'locked-acct', 'locked-password'), Status.RESOURCE_EXHAUSTED)).reason, 'LOGIN_LOCKED')
    assert.equal((await expectStatus(enroll('guessing-phone', 'other-acct', 'other-password'), Status.RESOURCE_EXHAUSTED)).reason, 'LOGIN_LOCKED')
    // An account that does not exist answers as a wrong password does.
    assert.equal((await expectStatus(enroll('curious-phone', 'no-such-acct', 'whatever-password'), Status.PERMISSION_DENIED)).reason, 'PASSWORD_WRONG')
    // The account lock is the login's lock too: a login of the account is refused while it lasts.
    await f.setUp('locked-acct', 'locked-password', 'lock-dev', 'lock-login-phone', false)
    const login = await f.startLogin('lock-dev')
    assert.equal(
      (await expectStatus(f.verify('lock-dev', 'lock-login-phone', login.loginId, login.bindingCode, 'locked-password'), Status.RESOURCE_EXHAUSTED)).reason,
      'LOGIN_LOCKED',
    )

    // One account at a time; enrolling again in the same one answers with the enrolment in force.
    const first = await enroll('roaming-phone', 'other-acct', 'other-password', 'Ada phone')
    assert.deepEqual([first.accountId, first.displayName], ['other-acct', 'Ada phone'])
    assert.equal((await enroll('roaming-phone', 'other-acct', 'other-password', 'renamed')).enrollmentId, first.enrollmentId)
    await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'third-acct', password: 'third-password' })
    assert.equal((await expectStatus(enroll('roaming-phone', 'third-acct', 'third-password'), Status.FAILED_PRECONDITION)).reason, 'TERMINAL_ENROLLED_ELSEWHERE')
    // At most CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT.
    for (let i = 1; i < MAX_TERMINALS; i++) await enroll(`family-phone-${i}`, 'other-acct', 'other-password')
    assert.equal((await expectStatus(enroll('one-too-many', 'other-acct', 'other-password'), Status.FAILED_PRECONDITION)).reason, 'TERMINAL_LIMIT_REACHED')

    // Listed by the account's own terminals and the operator, never by another account's terminal.
    const listed = await unaryCall(await t.client('account-management', terminal('roaming-phone')), 'listAccountTerminals', { accountId: '', pageSize: 2, pageToken: '' })
    assert.equal(listed.terminals.length, 2)
    assert.notEqual(listed.nextPageToken, '')
    const all = await unaryCall(accounts, 'listAccountTerminals', { accountId: 'other-acct', pageSize: 0, pageToken: '' })
    assert.deepEqual(
      all.terminals.map((x) => x.terminalId),
      ['roaming-phone', 'family-phone-1', 'family-phone-2', 'family-phone-3'],
    )
    await enroll('outsider-phone', 'third-acct', 'third-password')
    const outsider = await t.client('account-management', terminal('outsider-phone'))
    assert.equal(
      (await expectStatus(unaryCall(outsider, 'listAccountTerminals', { accountId: 'other-acct', pageSize: 0, pageToken: '' }), Status.PERMISSION_DENIED)).reason,
      'NOT_OWN_ACCOUNT',
    )
    assert.equal((await expectStatus(unaryCall(outsider, 'removeTerminal', { requestId: newRequestId(), terminalId: 'roaming-phone' }), Status.NOT_FOUND)).reason, 'TERMINAL_NOT_ENROLLED')
    for (const secret of ['locked-password', 'other-password']) assert.deepEqual(await findSecret(t, secret), [], `${secret} leaks nowhere`)
  })
})
