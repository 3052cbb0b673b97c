// Releasing or re-renting an instance ends everything granted on it (DESIGN, trust model), seen
// as an attacker would probe it over real gRPC, mTLS and a real database: the previous renter's
// logins, tokens, app sessions, terminal channels (and Notify streams) and unpaid orders, and
// the races between a login under way and the release.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { type ServiceError, status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { AppOrderState } from '../../gen/cloudpay/app/v1/app_service.ts'
import { ChannelState, EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { TransactionState } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { subscribe } from '../helpers/subscriber.ts'

const RELEASE_WAIT_MS = 2_000
const PAYMENT_PASSWORD = 'pay-secret-0815'
const AM_SERVICE: Identity = { role: 'service', id: 'account-management' }

let t: TestMesh
let f: ReturnType<typeof flows>
before(async () => {
  t = await startTestMesh({ env: { CLOUDPAY_RETRY_BASE_MS: '100', CLOUDPAY_RETRY_MAX_MS: '500', CLOUDPAY_RELEASE_WAIT_MS: String(RELEASE_WAIT_MS) } })
  f = flows(t, OPERATOR)
  const platform = await t.client('payment-platform', OPERATOR)
  await unaryCall(platform, 'createMerchantAccount', {
    requestId: newRequestId(),
    platformId: 'alphapay',
    merchantId: 'demo-shop',
    collectionAccount: 'SHOPALPHA0001',
    currencyCode: 'USD',
  })
})
after(async () => t?.stop())

/** As a real client does: UNAVAILABLE (a peer restarting, a channel in reconnect backoff) is retried with the same request. */
async function retryingUnavailable<T>(call: () => Promise<T>, attempts = 40): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call()
    } catch (error) {
      if ((error as ServiceError).code !== Status.UNAVAILABLE || attempt >= attempts) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * attempt)))
    }
  }
}

let renters = 0
/** A person with a cloud account and a phone; `device` is rented to them and the phone connected to it. */
async function renter(device: string) {
  const n = ++renters
  const person = { account: `renter${n}`, password: `renter-${n}-password`, phone: `renter-phone-${n}`, device }
  await f.setUp(person.account, person.password, device, person.phone)
  return person
}
type Renter = Awaited<ReturnType<typeof renter>>

async function assignment(device: string) {
  const am = await t.client('account-management', OPERATOR)
  return (await unaryCall(am, 'getInstanceAssignment', { deviceId: device })).assignment!
}

async function createAndSubmit(p: Renter, sessionToken: string) {
  const app = await t.client('app-service', instance(p.device))
  const { order: appOrder } = await unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: p.device, sessionToken, itemId: 'gem-pack-100', quantity: 1 })
  const pm = await t.client('payment-management', instance(p.device))
  const { order } = await unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: p.device, appOrderId: appOrder!.appOrderId })
  return { appOrder: appOrder!, order: order! }
}

async function fetchOrder(phone: string, device: string) {
  const pm = await t.client('payment-management', terminal(phone))
  return unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: device })
}

/**
 * Everything a renter can hold on a device: an app session, an order awaiting payment at a
 * platform and one merely submitted, a verified login not yet redeemed, a pending one, a redeemed
 * token not yet presented, and the phone's Notify stream.
 */
async function grantEverything(p: Renter) {
  const session = await f.logIn(p.device, p.phone, p.password)
  const platform = await t.client('payment-platform', OPERATOR)
  const payer = `RENTERPAYER${renters}00001`
  const openingBalance = { currencyCode: 'USD', amountMinor: 100_000n }
  await unaryCall(platform, 'createPayerAccount', { requestId: newRequestId(), platformId: 'alphapay', payerAccount: payer, paymentPassword: PAYMENT_PASSWORD, openingBalance })
  const accounts = await t.client('account-management', terminal(p.phone))
  await unaryCall(accounts, 'bindPaymentAccount', { requestId: newRequestId(), deviceId: p.device, platformId: 'alphapay', payerAccount: payer, makeDefault: true })

  const prepaid = await createAndSubmit(p, session.sessionToken)
  const { order: fetched } = await fetchOrder(p.phone, p.device)
  assert.equal(fetched!.orderId, prepaid.order.orderId)
  const pm = await t.client('payment-management', terminal(p.phone))
  const prepay = await unaryCall(pm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: prepaid.order.orderId, bindingId: '' })
  const submitted = await createAndSubmit(p, session.sessionToken)

  const verified = await f.startLogin(p.device)
  assert.equal((await f.verify(p.device, p.phone, verified.loginId, verified.bindingCode, p.password)).state, LoginState.LOGIN_STATE_VERIFIED)
  const pending = await f.startLogin(p.device)
  const redeemed = await f.startLogin(p.device)
  await f.verify(p.device, p.phone, redeemed.loginId, redeemed.bindingCode, p.password)
  const { loginToken } = await f.redeem(p.device, redeemed.loginId)

  const phoneStream = subscribe(await t.client('instance-events', terminal(p.phone)), p.device)
  await phoneStream.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_LOGIN_REQUESTED && e.subjectId === redeemed.loginId)
  return { session, prepaid, prepay, submitted, verified, pending, loginToken, phoneStream, assignment: await assignment(p.device) }
}
type Grants = Awaited<ReturnType<typeof grantEverything>>

/** What the previous renter (and anyone replaying their grants) must find ended. */
async function assertEverythingEnded(p: Renter, g: Grants, instanceEvents: ReturnType<typeof subscribe>) {
  // Logins and tokens: ended in the release's own transaction; the device's instance no longer
  // finds the ended rental's logins at all (rental-boundary.ts), the back office's store says ENDED.
  const redeem = await expectStatus(f.redeem(p.device, g.verified.loginId), Status.NOT_FOUND)
  assert.equal(redeem.reason, 'LOGIN_NOT_FOUND')
  const am = await t.client('account-management', instance(p.device))
  for (const { loginId } of [g.pending, g.verified]) {
    assert.equal((await expectStatus(unaryCall(am, 'getLogin', { deviceId: p.device, loginId }), Status.NOT_FOUND)).reason, 'LOGIN_NOT_FOUND')
    const row = await t.mesh.database.db.withSchema('account_management').selectFrom('logins').select('state').where('login_id', '=', loginId).executeTakeFirstOrThrow()
    assert.equal(row.state, 'ended')
  }
  const token = await expectStatus(f.appLogin(p.device, g.loginToken), Status.UNAUTHENTICATED)
  assert.equal(token.reason, 'TOKEN_ENDED', 'the token yields no app account, the previous one least of all')

  // App sessions and the assignment's unpaid app orders.
  const app = await t.client('app-service', instance(p.device))
  const sessionToken = g.session.sessionToken
  // One call at a time: a refusal must never be left unawaited while another is checked.
  for (const refused of [
    () => unaryCall(app, 'getAppAccount', { deviceId: p.device, sessionToken }),
    () => unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: p.device, sessionToken, itemId: 'gem-pack-100', quantity: 1 }),
    () => unaryCall(app, 'listInventory', { deviceId: p.device, sessionToken, pageSize: 0, pageToken: '' }),
  ]) {
    assert.equal((await expectStatus(refused(), Status.UNAUTHENTICATED)).reason, 'SESSION_ENDED')
  }
  // Read as PaymentManagement reads it: the device's instance no longer reads the ended rental's orders.
  const appAsPayments = await t.client('app-service', { role: 'service', id: 'payment-management' })
  assert.equal((await unaryCall(appAsPayments, 'getOrder', { appOrderId: g.submitted.appOrder.appOrderId })).order!.state, AppOrderState.APP_ORDER_STATE_REJECTED)

  // The phone: its channel is closed, its stream ended, it can act for the device no more.
  const ended = await g.phoneStream.ended
  assert.equal(ended.code, Status.PERMISSION_DENIED)
  assert.match(ended.details, /was closed/)
  const events = await t.client('instance-events', OPERATOR)
  const { channels } = await unaryCall(events, 'listChannels', { terminalId: p.phone, deviceId: p.device, includeClosed: true, pageSize: 0, pageToken: '' })
  assert.deepEqual(
    channels.map((c) => c.state),
    [ChannelState.CHANNEL_STATE_CLOSED],
  )
  assert.equal((await expectStatus(fetchOrder(p.phone, p.device), Status.PERMISSION_DENIED)).reason, 'NO_CHANNEL')
  const pending = await expectStatus(f.verify(p.device, p.phone, g.pending.loginId, g.pending.bindingCode, p.password), Status.PERMISSION_DENIED)
  assert.equal(pending.reason, 'NO_CHANNEL')

  // Unpaid orders: cancelled, the instance told, the prepay cancelled at the platform.
  const pm = await t.client('payment-management', OPERATOR)
  for (const { order } of [g.prepaid, g.submitted]) {
    const now = (await unaryCall(pm, 'getOrder', { orderId: order.orderId })).order!
    assert.equal(now.state, OrderState.ORDER_STATE_CANCELLED)
    assert.match(now.endReason, /released or re-rented/)
    await instanceEvents.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_FAILED && e.subjectId === order.orderId)
  }
  const platform = await t.client('payment-platform', OPERATOR)
  const deadline = Date.now() + 10_000
  const { platformId, serialNumber } = g.prepay
  while ((await unaryCall(platform, 'getTransaction', { platformId, serialNumber })).transaction!.state !== TransactionState.TRANSACTION_STATE_CANCELLED) {
    assert.ok(Date.now() < deadline, 'the prepay is cancelled at the platform')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const phonePlatform = await t.client('payment-platform', terminal(p.phone))
  // Refused either way: the phone may no longer act for the device, and the transaction is cancelled.
  const refused = await expectStatus(unaryCall(phonePlatform, 'pay', { requestId: newRequestId(), platformId, serialNumber, paymentPassword: PAYMENT_PASSWORD }), Status.PERMISSION_DENIED)
  assert.equal(refused.reason, 'TERMINAL_NOT_ALLOWED')
}

describe('releasing an instance', () => {
  test('ends every login, token, app session, channel and unpaid order of the device before it answers', async () => {
    const p = await renter('rel-dev-1')
    const g = await grantEverything(p)
    const instanceEvents = subscribe(await t.client('instance-events', instance(p.device)), p.device)
    try {
      const am = await t.client('account-management', OPERATOR)
      const reply = await unaryCall(am, 'releaseInstance', { requestId: newRequestId(), deviceId: p.device })
      assert.equal(reply.released!.assignmentId, g.assignment.assignmentId)
      assert.equal(reply.grantsEnded, true, 'AppService, InstanceEvents and PaymentManagement acknowledged before the reply')
      await assertEverythingEnded(p, g, instanceEvents)
      await expectStatus(unaryCall(am, 'getInstanceAssignment', { deviceId: p.device }), Status.NOT_FOUND)
    } finally {
      instanceEvents.cancel()
      g.phoneStream.cancel()
    }
  })
})

describe('re-renting an instance to another account', () => {
  test("ends the previous renter's grants; the new renter logs in to their own app account and neither can pay the other's orders", async () => {
    const old = await renter('rel-dev-2')
    const g = await grantEverything(old)
    const instanceEvents = subscribe(await t.client('instance-events', instance(old.device)), old.device)
    try {
      const am = await t.client('account-management', OPERATOR)
      const next = { account: `renter${++renters}`, password: 'next-renter-password', phone: `next-phone-${renters}`, device: old.device }
      await unaryCall(am, 'registerCloudAccount', { requestId: newRequestId(), accountId: next.account, password: next.password })
      const reply = await unaryCall(am, 'assignInstance', { requestId: newRequestId(), deviceId: old.device, accountId: next.account })
      assert.equal(reply.replaced!.assignmentId, g.assignment.assignmentId)
      assert.equal(reply.replaced!.accountId, old.account)
      assert.equal(reply.assignment!.accountId, next.account)
      assert.notEqual(reply.assignment!.assignmentId, g.assignment.assignmentId, 'a new assignment id for the new rental')
      assert.equal(reply.grantsEnded, true)
      await assertEverythingEnded(old, g, instanceEvents)

      // The next renter: a new channel, a new login, their own app account.
      await unaryCall(await t.client('instance-events', OPERATOR), 'openChannel', { requestId: newRequestId(), deviceId: next.device, terminalId: next.phone })
      const session = await f.logIn(next.device, next.phone, next.password)
      assert.equal(session.created, true)
      assert.notEqual(session.appAccount!.appAccountId, g.session.appAccount!.appAccountId, "never the previous renter's app account")
      const app = await t.client('app-service', instance(next.device))
      assert.equal(
        (await unaryCall(app, 'getAppAccount', { deviceId: next.device, sessionToken: session.sessionToken })).appAccount!.appAccountId,
        session.appAccount!.appAccountId,
      )
      const stale = await expectStatus(f.appLogin(old.device, g.loginToken), Status.UNAUTHENTICATED)
      assert.equal(stale.reason, 'TOKEN_ENDED')

      // Orders: the new phone gets only the new renter's order; the old phone gets nothing.
      const mine = await createAndSubmit(next, session.sessionToken)
      assert.equal((await expectStatus(fetchOrder(old.phone, old.device), Status.PERMISSION_DENIED)).reason, 'NO_CHANNEL')
      assert.equal((await fetchOrder(next.phone, next.device)).order!.orderId, mine.order.orderId)
      assert.equal((await expectStatus(fetchOrder(next.phone, next.device), Status.NOT_FOUND)).reason, 'NO_ORDER_WAITING')
    } finally {
      instanceEvents.cancel()
      g.phoneStream.cancel()
    }
  })

  test('re-assigning to the same account is a new rental too: the earlier session ends', async () => {
    const p = await renter('rel-dev-3')
    const session = await f.logIn(p.device, p.phone, p.password)
    const before = await assignment(p.device)
    const am = await t.client('account-management', OPERATOR)
    const reply = await unaryCall(am, 'assignInstance', { requestId: newRequestId(), deviceId: p.device, accountId: p.account })
    assert.equal(reply.replaced!.assignmentId, before.assignmentId)
    assert.notEqual(reply.assignment!.assignmentId, before.assignmentId)
    assert.equal(reply.grantsEnded, true)
    const app = await t.client('app-service', instance(p.device))
    const refused = await expectStatus(unaryCall(app, 'getAppAccount', { deviceId: p.device, sessionToken: session.sessionToken }), Status.UNAUTHENTICATED)
    assert.equal(refused.reason, 'SESSION_ENDED')
    // The same person logs in again under the new rental and gets their app account back.
    await unaryCall(await t.client('instance-events', OPERATOR), 'openChannel', { requestId: newRequestId(), deviceId: p.device, terminalId: p.phone })
    const again = await f.logIn(p.device, p.phone, p.password)
    assert.equal(again.created, false)
    assert.equal(again.appAccount!.appAccountId, session.appAccount!.appAccountId)
  })

  test('assigning a free device replaces nothing; a retried AssignInstance replays the same assignment', async () => {
    const am = await t.client('account-management', OPERATOR)
    await unaryCall(am, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'free-device-owner', password: 'free-device-password' })
    const request = { requestId: newRequestId(), deviceId: 'rel-dev-4', accountId: 'free-device-owner' }
    const first = await unaryCall(am, 'assignInstance', request)
    assert.equal(first.replaced, undefined)
    assert.equal(first.grantsEnded, true)
    const replay = await unaryCall(am, 'assignInstance', request)
    assert.equal(replay.assignment!.assignmentId, first.assignment!.assignmentId)
    assert.equal((await assignment('rel-dev-4')).assignmentId, first.assignment!.assignmentId)
  })
})

describe('races between a login under way and the release', () => {
  test('a token validated just before the release cannot open a session after its assignment ended', async () => {
    // The order an unlucky interleaving produces: AccountManagement validates the token, the
    // release ends the assignment at AppService, and only then would the session be written.
    const p = await renter('rel-dev-5')
    const login = await f.startLogin(p.device)
    await f.verify(p.device, p.phone, login.loginId, login.bindingCode, p.password)
    const { loginToken } = await f.redeem(p.device, login.loginId)
    const { assignmentId } = await assignment(p.device)
    const app = await t.client('app-service', AM_SERVICE)
    const endRequest = { requestId: newRequestId(), deviceId: p.device, assignmentId, endTime: new Date() }
    assert.deepEqual(await unaryCall(app, 'endDeviceSessions', endRequest), { endedSessions: 0, rejectedOrders: 0 })
    const refused = await expectStatus(f.appLogin(p.device, loginToken), Status.UNAUTHENTICATED)
    assert.equal(refused.reason, 'ASSIGNMENT_ENDED')
    assert.deepEqual(await unaryCall(app, 'endDeviceSessions', endRequest), { endedSessions: 0, rejectedOrders: 0 }, 'a redelivery replays')
  })

  test('concurrent LoginWithToken, ValidateLoginToken and ReleaseInstance leave no live session of the released assignment', async (ctx) => {
    const am = await t.client('account-management', OPERATOR)
    const validator = await t.client('account-management', { role: 'service', id: 'app-service' })
    const outcomes: string[] = []
    // The release starts 0, 1, 2, 4 ... ms after the login, so it lands before, inside and after LoginWithToken's steps.
    const ROUNDS = 8
    for (let round = 0; round < ROUNDS; round++) {
      const p = await renter(`rel-race-${round}`)
      const tokens: string[] = []
      for (let i = 0; i < 2; i++) {
        const login = await f.startLogin(p.device)
        await f.verify(p.device, p.phone, login.loginId, login.bindingCode, p.password)
        tokens.push((await f.redeem(p.device, login.loginId)).loginToken)
      }
      const { assignmentId } = await assignment(p.device)
      const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
      const releaseAfterMs = round === 0 ? 0 : 2 ** (round - 1)
      const [appLogin, validated, released] = await Promise.allSettled([
        f.appLogin(p.device, tokens[0]!),
        unaryCall(validator, 'validateLoginToken', { requestId: newRequestId(), loginToken: tokens[1]!, deviceId: p.device }),
        delay(releaseAfterMs).then(() => unaryCall(am, 'releaseInstance', { requestId: newRequestId(), deviceId: p.device })),
      ])
      assert.equal(released.status, 'fulfilled')
      assert.equal(released.value.grantsEnded, true)
      assert.equal(released.value.released!.assignmentId, assignmentId)
      if (validated.status === 'fulfilled') assert.equal(validated.value.assignmentId, assignmentId, 'a token names the rental it was granted under')
      else assert.equal((validated.reason as ServiceError).code, Status.UNAUTHENTICATED)
      if (appLogin.status === 'fulfilled') {
        const app = await t.client('app-service', instance(p.device))
        const refused = await expectStatus(unaryCall(app, 'getAppAccount', { deviceId: p.device, sessionToken: appLogin.value.sessionToken }), Status.UNAUTHENTICATED)
        assert.equal(refused.reason, 'SESSION_ENDED')
        outcomes.push('session opened, then ended')
      } else {
        const error = appLogin.reason as ServiceError
        assert.equal(error.code, Status.UNAUTHENTICATED, error.details)
        outcomes.push(`refused: ${error.details.split(':')[0]}`)
      }
      // Nothing live for the assignment is left in AppService's own tables either.
      const live = await t.mesh.database.db
        .withSchema('app_service')
        .selectFrom('app_sessions')
        .select('token_hash')
        .where('device_id', '=', p.device)
        .where('ended_at', 'is', null)
        .execute()
      assert.deepEqual(live, [], `round ${round}: no live session of the released device`)
    }
    assert.equal(outcomes.length, ROUNDS)
    ctx.diagnostic(`LoginWithToken outcomes: ${outcomes.join('; ')}`)
  })
})

describe('when a service is down', () => {
  test('the release still succeeds, says the ending is not confirmed, and the outbox ends the sessions once AppService is back', async () => {
    const p = await renter('rel-dev-6')
    const session = await f.logIn(p.device, p.phone, p.password)
    const am = await t.client('account-management', OPERATOR)
    const request = { requestId: newRequestId(), deviceId: p.device }
    await t.mesh.restart('app-service', async () => {
      const reply = await unaryCall(am, 'releaseInstance', request)
      assert.equal(reply.grantsEnded, false, 'AppService could not acknowledge')
      // Logins and tokens are ended in AccountManagement's own transaction regardless.
      assert.equal(reply.released!.accountId, p.account)
    })
    // A retry with the same request id waits again and answers afresh, once the delivery is acknowledged.
    let confirmed = false
    for (let attempt = 0; attempt < 10 && !confirmed; attempt++) confirmed = (await retryingUnavailable(() => unaryCall(am, 'releaseInstance', request))).grantsEnded
    assert.equal(confirmed, true, 'the outbox delivered the end to AppService once it was back')
    const app = await t.client('app-service', instance(p.device))
    const refused = await expectStatus(
      retryingUnavailable(() => unaryCall(app, 'getAppAccount', { deviceId: p.device, sessionToken: session.sessionToken })),
      Status.UNAUTHENTICATED,
    )
    assert.equal(refused.reason, 'SESSION_ENDED')
  })
})

describe('the hand-off RPCs', () => {
  test('only account-management may call them; they validate their requests', async () => {
    for (const identity of [OPERATOR, instance('rel-dev-7'), terminal('rel-phone-7'), { role: 'service', id: 'payment-management' } as Identity]) {
      const app = await t.client('app-service', identity)
      await expectStatus(unaryCall(app, 'endDeviceSessions', { requestId: newRequestId(), deviceId: 'rel-dev-7', assignmentId: newRequestId(), endTime: new Date() }), Status.PERMISSION_DENIED)
      const events = await t.client('instance-events', identity)
      await expectStatus(unaryCall(events, 'closeDeviceChannels', { requestId: newRequestId(), deviceId: 'rel-dev-7', openedBefore: new Date() }), Status.PERMISSION_DENIED)
      const pm = await t.client('payment-management', identity)
      await expectStatus(unaryCall(pm, 'cancelDeviceOrders', { requestId: newRequestId(), deviceId: 'rel-dev-7', submittedBefore: new Date() }), Status.PERMISSION_DENIED)
    }
    const app = await t.client('app-service', AM_SERVICE)
    const noAssignment = await expectStatus(unaryCall(app, 'endDeviceSessions', { requestId: newRequestId(), deviceId: 'rel-dev-7', assignmentId: '', endTime: undefined }), Status.INVALID_ARGUMENT)
    assert.deepEqual(
      noAssignment.violations.map((v) => v.field),
      ['assignment_id'],
    )
    const events = await t.client('instance-events', AM_SERVICE)
    const noTime = await expectStatus(
      unaryCall(events, 'closeDeviceChannels', { requestId: newRequestId(), deviceId: 'rel-dev-7', openedBefore: undefined }),
      Status.INVALID_ARGUMENT,
    )
    assert.deepEqual(
      noTime.violations.map((v) => v.field),
      ['opened_before'],
    )
    const pm = await t.client('payment-management', AM_SERVICE)
    const noCutoff = await expectStatus(unaryCall(pm, 'cancelDeviceOrders', { requestId: '', deviceId: 'rel-dev-7', submittedBefore: undefined }), Status.INVALID_ARGUMENT)
    assert.deepEqual(noCutoff.violations.map((v) => v.field).sort(), ['request_id', 'submitted_before'])
  })

  test('a late redelivery leaves channels opened and orders submitted after the release alone', async () => {
    const p = await renter('rel-dev-8')
    const releasedAt = new Date(Date.now() - 60_000)
    const events = await t.client('instance-events', AM_SERVICE)
    const closed = await unaryCall(events, 'closeDeviceChannels', { requestId: newRequestId(), deviceId: p.device, openedBefore: releasedAt })
    assert.deepEqual(closed.channels, [], 'the channel was opened after that release')
    const session = await f.logIn(p.device, p.phone, p.password)
    const { order } = await createAndSubmit(p, session.sessionToken)
    const pm = await t.client('payment-management', AM_SERVICE)
    assert.deepEqual((await unaryCall(pm, 'cancelDeviceOrders', { requestId: newRequestId(), deviceId: p.device, submittedBefore: releasedAt })).orderIds, [])
    assert.equal((await fetchOrder(p.phone, p.device)).order!.orderId, order.orderId, 'still open, still payable')
  })
})

describe('the next renter', () => {
  test("reads none of the previous renter's orders (PaymentManagement's, the application's) or events on the device; the back office still reads the orders", async () => {
    const old = await renter('rel-dev-9')
    const g = await grantEverything(old)
    g.phoneStream.cancel()
    const am = await t.client('account-management', OPERATOR)
    const next = { account: `renter${++renters}`, password: 'next-renter-password', phone: `next-phone-${renters}`, device: old.device }
    await unaryCall(am, 'registerCloudAccount', { requestId: newRequestId(), accountId: next.account, password: next.password })
    assert.equal((await unaryCall(am, 'assignInstance', { requestId: newRequestId(), deviceId: old.device, accountId: next.account })).grantsEnded, true)
    await unaryCall(await t.client('instance-events', OPERATOR), 'openChannel', { requestId: newRequestId(), deviceId: next.device, terminalId: next.phone })
    const session = await f.logIn(next.device, next.phone, next.password)
    const mine = await createAndSubmit(next, session.sessionToken)
    const theirs = [g.prepaid.order.orderId, g.submitted.order.orderId]
    const theirLogins = [g.verified.loginId, g.pending.loginId]

    for (const reader of [terminal(next.phone), instance(next.device)]) {
      const pm = await t.client('payment-management', reader)
      const listed = await unaryCall(pm, 'listOrders', { deviceId: next.device, pageSize: 0, pageToken: '' })
      assert.deepEqual(
        listed.orders.map((o) => o.orderId),
        [mine.order.orderId],
        `${reader.role} lists only the current rental's orders`,
      )
      for (const orderId of theirs) {
        assert.equal((await expectStatus(unaryCall(pm, 'getOrder', { orderId }), Status.NOT_FOUND)).reason, 'ORDER_NOT_FOUND', `${reader.role} reads ${orderId}`)
      }
      assert.equal((await unaryCall(pm, 'getOrder', { orderId: mine.order.orderId })).order!.orderId, mine.order.orderId)
      const pipe = await t.client('instance-events', reader)
      const { events } = await unaryCall(pipe, 'listEvents', { deviceId: next.device, afterSequence: 0n, pageSize: 0, pageToken: '' })
      const seen = events.map((e) => e.subjectId)
      for (const loginId of theirLogins) assert.ok(!seen.includes(loginId), `${reader.role} reads the previous renter's login ${loginId}`)
      assert.ok(events.some((e) => e.kind === EventKind.EVENT_KIND_LOGIN_REQUESTED), `${reader.role} reads the current rental's login`)
      // Following the stream from its start replays the current rental only, too.
      const stream = subscribe(pipe, next.device)
      try {
        const first = await stream.waitFor(1)
        assert.ok(!theirLogins.includes(first[0]!.subjectId), `${reader.role} follows the previous renter's login`)
        assert.ok(first[0]!.sequence >= events[0]!.sequence)
      } finally {
        stream.cancel()
      }
    }
    // The application's own record of the previous renter's orders: not for the device's instance any more.
    const app = await t.client('app-service', instance(next.device))
    for (const { appOrder } of [g.prepaid, g.submitted]) {
      assert.equal((await expectStatus(unaryCall(app, 'getOrder', { appOrderId: appOrder.appOrderId }), Status.NOT_FOUND)).reason, 'ORDER_NOT_FOUND')
    }
    assert.equal((await unaryCall(app, 'getOrder', { appOrderId: mine.appOrder.appOrderId })).order!.appOrderId, mine.appOrder.appOrderId)
    const backOffice = await t.client('payment-management', OPERATOR)
    const all = await unaryCall(backOffice, 'listOrders', { deviceId: next.device, pageSize: 0, pageToken: '' })
    assert.deepEqual(all.orders.map((o) => o.orderId).sort(), [mine.order.orderId, ...theirs].sort())
  })
})
