// Logging in through a cloud application instance (DESIGN login steps 0-4) over real gRPC, mTLS
// and a real database, acting as operator, instance and terminal. The credential goes from the
// terminal to AccountManagement only; the instance learns of the outcome from the pipe.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { ManualClock } from '../../services/runtime/clock.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { subscribe } from '../helpers/subscriber.ts'

const TTL_MS = 3000
const LOCK_MS = 2000
// The services' time: expiries and locks move when the test moves it, however slow the machine.
const clock = new ManualClock()
let t: TestMesh
before(async () => {
  t = await startTestMesh({
    clock,
    env: { CLOUDPAY_LOGIN_TTL_MS: String(TTL_MS), CLOUDPAY_LOGIN_TOKEN_TTL_MS: String(TTL_MS), CLOUDPAY_LOGIN_MAX_FAILURES: '3', CLOUDPAY_LOGIN_LOCK_MS: String(LOCK_MS) },
  })
  ;({ setUp, startLogin, verify, redeem, appLogin, logIn } = flows(t, OPERATOR))
})
after(async () => t?.stop())

type Flows = ReturnType<typeof flows>
let setUp: Flows['setUp'], startLogin: Flows['startLogin'], verify: Flows['verify'], redeem: Flows['redeem'], appLogin: Flows['appLogin'], logIn: Flows['logIn']

describe('the login flow', () => {
  test('instance, terminal and services log a person in; the instance is woken by the pipe, never sees the password', async () => {
    const password = 'alice-secret-password-1'
    await setUp('alice', password, 'cg-1', 'alice-phone')
    const instanceEvents = subscribe(await t.client('instance-events', instance('cg-1')), 'cg-1')
    const phoneEvents = subscribe(await t.client('instance-events', terminal('alice-phone')), 'cg-1')
    try {
      // 1. The instance starts a login and asks on the pipe.
      const login = await startLogin('cg-1')
      assert.equal(login.state, LoginState.LOGIN_STATE_PENDING)
      assert.match(login.bindingCode, /^\d{6}$/)
      assert.match(login.loginId, /^[A-Za-z0-9_-]{22}$/, '128 random bits')
      // 2. The terminal learns its device from its channel and the login from the pipe.
      const channels = await unaryCall(await t.client('instance-events', terminal('alice-phone')), 'listChannels', {
        terminalId: '',
        deviceId: '',
        includeClosed: false,
        pageSize: 0,
        pageToken: '',
      })
      assert.deepEqual(
        channels.channels.map((c) => c.deviceId),
        ['cg-1'],
      )
      const [requested] = await phoneEvents.waitFor(1)
      assert.equal(requested!.kind, EventKind.EVENT_KIND_LOGIN_REQUESTED)
      assert.equal(requested!.subjectId, login.loginId)
      const verified = await verify('cg-1', 'alice-phone', requested!.subjectId, login.bindingCode, password)
      assert.equal(verified.state, LoginState.LOGIN_STATE_VERIFIED)
      assert.equal(verified.bindingCode, '', 'the code goes only to the instance')
      // 3. The instance is woken by LOGIN_VERIFIED and redeems the login for a token.
      const events = await instanceEvents.waitFor(2)
      assert.deepEqual(
        events.map((e) => [e.kind, e.subjectId]),
        [
          [EventKind.EVENT_KIND_LOGIN_REQUESTED, login.loginId],
          [EventKind.EVENT_KIND_LOGIN_VERIFIED, login.loginId],
        ],
      )
      const { loginToken, expireTime } = await redeem('cg-1', login.loginId)
      assert.ok(expireTime && expireTime > clock.now())
      // 4. The application validates the token and creates the app account on first login.
      const session = await appLogin('cg-1', loginToken)
      assert.equal(session.created, true)
      assert.match(session.appAccount!.displayName, /^cloud platform guest \d{6}$/)
      const account = await unaryCall(await t.client('app-service', instance('cg-1')), 'getAppAccount', { deviceId: 'cg-1', sessionToken: session.sessionToken })
      assert.equal(account.appAccount!.appAccountId, session.appAccount!.appAccountId)
      assert.deepEqual(await findSecret(t, password), [], 'the password is in no table, log, span or event')
    } finally {
      instanceEvents.cancel()
      phoneEvents.cancel()
    }
  })

  test('the same cloud account logging in again, from a new instance, gets the same app account back', async () => {
    await setUp('bea', 'bea-password-123', 'cg-2', 'bea-phone')
    const first = await logIn('cg-2', 'bea-phone', 'bea-password-123')
    assert.equal(first.created, true)
    await setUp('bea', 'bea-password-123', 'cg-3', 'bea-phone', false)
    const second = await logIn('cg-3', 'bea-phone', 'bea-password-123')
    assert.equal(second.created, false)
    assert.equal(second.appAccount!.appAccountId, first.appAccount!.appAccountId)
    assert.notEqual(second.sessionToken, first.sessionToken)
  })
})

describe('wrong credentials', () => {
  test('a wrong password or binding code rejects the login and tells the instance', async () => {
    await setUp('cleo', 'cleo-password-123', 'cg-4', 'cleo-phone')
    const events = subscribe(await t.client('instance-events', instance('cg-4')), 'cg-4')
    try {
      const login = await startLogin('cg-4')
      const rejected = await verify('cg-4', 'cleo-phone', login.loginId, login.bindingCode, 'not-the-password')
      assert.equal(rejected.state, LoginState.LOGIN_STATE_REJECTED)
      const seen = await events.waitFor(2)
      assert.equal(seen[1]!.kind, EventKind.EVENT_KIND_LOGIN_REJECTED)
      const ended = await expectStatus(redeem('cg-4', login.loginId), Status.FAILED_PRECONDITION)
      assert.equal(ended.reason, 'LOGIN_REJECTED')

      const second = await startLogin('cg-4')
      const wrongCode = String((Number(second.bindingCode) + 1) % 1_000_000).padStart(6, '0')
      assert.equal((await verify('cg-4', 'cleo-phone', second.loginId, wrongCode, 'cleo-password-123')).state, LoginState.LOGIN_STATE_REJECTED)
    } finally {
      events.cancel()
    }
  })

  test('a login whose device was released is ended: its terminal is disconnected, and reconnected it still cannot verify it', async () => {
    await setUp('dora', 'dora-password-123', 'cg-5', 'dora-phone')
    const login = await startLogin('cg-5')
    await unaryCall(await t.client('account-management', OPERATOR), 'releaseInstance', { requestId: newRequestId(), deviceId: 'cg-5' })
    const disconnected = await expectStatus(verify('cg-5', 'dora-phone', login.loginId, login.bindingCode, 'dora-password-123'), Status.PERMISSION_DENIED)
    assert.equal(disconnected.reason, 'NO_CHANNEL')
    await unaryCall(await t.client('instance-events', OPERATOR), 'openChannel', { requestId: newRequestId(), deviceId: 'cg-5', terminalId: 'dora-phone' })
    // The released rental's login is not the reconnected terminal's to find (rental-boundary.ts).
    const ended = await expectStatus(verify('cg-5', 'dora-phone', login.loginId, login.bindingCode, 'dora-password-123'), Status.NOT_FOUND)
    assert.equal(ended.reason, 'LOGIN_NOT_FOUND')
  })

  test('failed attempts lock the account and the device; the lock expires', async () => {
    await setUp('eli', 'eli-password-123', 'cg-6', 'eli-phone')
    for (let i = 0; i < 3; i++) {
      const login = await startLogin('cg-6')
      assert.equal((await verify('cg-6', 'eli-phone', login.loginId, login.bindingCode, 'wrong')).state, LoginState.LOGIN_STATE_REJECTED)
    }
    const login = await startLogin('cg-6')
    const locked = await expectStatus(verify('cg-6', 'eli-phone', login.loginId, login.bindingCode, 'eli-password-123'), Status.RESOURCE_EXHAUSTED, 'too many failed logins')
    assert.equal(locked.reason, 'LOGIN_LOCKED')
    // The lock holds the account from other devices too.
    await setUp('eli', 'eli-password-123', 'cg-7', 'eli-phone', false)
    const elsewhere = await startLogin('cg-7')
    await expectStatus(verify('cg-7', 'eli-phone', elsewhere.loginId, elsewhere.bindingCode, 'eli-password-123'), Status.RESOURCE_EXHAUSTED)
    clock.advance(LOCK_MS + 1)
    const retry = await startLogin('cg-6')
    assert.equal((await verify('cg-6', 'eli-phone', retry.loginId, retry.bindingCode, 'eli-password-123')).state, LoginState.LOGIN_STATE_VERIFIED)
  })
})

describe('login ids and tokens', () => {
  test('a login id is redeemed exactly once, even by two concurrent redemptions', async () => {
    await setUp('finn', 'finn-password-1', 'cg-8', 'finn-phone')
    const login = await startLogin('cg-8')
    await verify('cg-8', 'finn-phone', login.loginId, login.bindingCode, 'finn-password-1')
    const outcomes = await Promise.allSettled([redeem('cg-8', login.loginId), redeem('cg-8', login.loginId), redeem('cg-8', login.loginId)])
    const won = outcomes.filter((o) => o.status === 'fulfilled')
    assert.equal(won.length, 1, 'exactly one redemption wins')
    for (const lost of outcomes.filter((o) => o.status === 'rejected')) {
      assert.equal((lost as PromiseRejectedResult).reason.code, Status.FAILED_PRECONDITION)
    }
    const reused = await expectStatus(redeem('cg-8', login.loginId), Status.FAILED_PRECONDITION)
    assert.equal(reused.reason, 'LOGIN_ALREADY_REDEEMED')
  })

  test('a retried redemption (same request id) returns the same token', async () => {
    await setUp('gus', 'gus-password-1', 'cg-9', 'gus-phone')
    const login = await startLogin('cg-9')
    await verify('cg-9', 'gus-phone', login.loginId, login.bindingCode, 'gus-password-1')
    const am = await t.client('account-management', instance('cg-9'))
    const request = { requestId: newRequestId(), deviceId: 'cg-9', loginId: login.loginId }
    const first = await unaryCall(am, 'redeemLogin', request)
    const again = await unaryCall(am, 'redeemLogin', request)
    assert.equal(again.loginToken, first.loginToken)
    assert.deepEqual(await findSecret(t, first.loginToken), [], 'the token is stored only hashed or sealed')
  })

  test('a token is refused when reused, presented from another device, or expired', async () => {
    await setUp('hana', 'hana-password-1', 'cg-10', 'hana-phone')
    await setUp('hana', 'hana-password-1', 'cg-11', 'hana-phone', false)
    const once = await startLogin('cg-10')
    await verify('cg-10', 'hana-phone', once.loginId, once.bindingCode, 'hana-password-1')
    const { loginToken } = await redeem('cg-10', once.loginId)
    const other = await expectStatus(appLogin('cg-11', loginToken), Status.UNAUTHENTICATED)
    assert.equal(other.reason, 'TOKEN_OTHER_DEVICE')
    await appLogin('cg-10', loginToken)
    const reused = await expectStatus(appLogin('cg-10', loginToken), Status.UNAUTHENTICATED)
    assert.equal(reused.reason, 'TOKEN_USED')

    const late = await startLogin('cg-10')
    await verify('cg-10', 'hana-phone', late.loginId, late.bindingCode, 'hana-password-1')
    const stale = await redeem('cg-10', late.loginId)
    clock.passTime(stale.expireTime)
    const expired = await expectStatus(appLogin('cg-10', stale.loginToken), Status.UNAUTHENTICATED)
    assert.equal(expired.reason, 'TOKEN_EXPIRED')
  })

  test('an unfinished login expires', async () => {
    await setUp('ivo', 'ivo-password-1', 'cg-12', 'ivo-phone')
    const login = await startLogin('cg-12')
    clock.passTime(login.expireTime)
    const expired = await expectStatus(verify('cg-12', 'ivo-phone', login.loginId, login.bindingCode, 'ivo-password-1'), Status.FAILED_PRECONDITION)
    assert.equal(expired.reason, 'LOGIN_EXPIRED')
  })
})

describe('polling', () => {
  test('GetLogin answers the state (binding code only to the instance) and is rate limited', async () => {
    await setUp('mia', 'mia-password-1', 'cg-16', 'mia-phone')
    const login = await startLogin('cg-16')
    const phone = await t.client('account-management', terminal('mia-phone'))
    const seen = await unaryCall(phone, 'getLogin', { deviceId: 'cg-16', loginId: login.loginId })
    assert.equal(seen.login!.state, LoginState.LOGIN_STATE_PENDING)
    assert.equal(seen.login!.bindingCode, '')
    const am = await t.client('account-management', instance('cg-16'))
    assert.equal((await unaryCall(am, 'getLogin', { deviceId: 'cg-16', loginId: login.loginId })).login!.bindingCode, login.bindingCode)
    let limited: Awaited<ReturnType<typeof expectStatus>> | undefined
    for (let i = 0; i < 20 && !limited; i++) {
      try {
        await unaryCall(am, 'getLogin', { deviceId: 'cg-16', loginId: login.loginId })
      } catch {
        limited = await expectStatus(unaryCall(am, 'getLogin', { deviceId: 'cg-16', loginId: login.loginId }), Status.RESOURCE_EXHAUSTED, 'wait for events')
      }
    }
    assert.equal(limited?.reason, 'RATE_LIMITED')
  })
})

describe('who may do what', () => {
  test('an unassigned instance cannot start a login; an unknown login is not found', async () => {
    const am = await t.client('account-management', instance('cg-nobody'))
    const unassigned = await expectStatus(unaryCall(am, 'startLogin', { requestId: newRequestId(), deviceId: 'cg-nobody' }), Status.FAILED_PRECONDITION)
    assert.equal(unassigned.reason, 'INSTANCE_NOT_ASSIGNED')
    await setUp('joan', 'joan-password-1', 'cg-13', 'joan-phone')
    await expectStatus(verify('cg-13', 'joan-phone', 'AAAAAAAAAAAAAAAAAAAAAA', '123456', 'joan-password-1'), Status.NOT_FOUND)
  })

  test('a terminal without a channel to the device cannot verify its login', async () => {
    await setUp('kai', 'kai-password-1', 'cg-14', 'kai-phone')
    const login = await startLogin('cg-14')
    const denied = await expectStatus(verify('cg-14', 'intruder-phone', login.loginId, login.bindingCode, 'kai-password-1'), Status.PERMISSION_DENIED, 'no open channel')
    assert.equal(denied.reason, 'NO_CHANNEL')
  })

  test("an instance cannot redeem another device's login, nor validate tokens itself", async () => {
    await setUp('lea', 'lea-password-1', 'cg-15', 'lea-phone')
    const login = await startLogin('cg-15')
    await verify('cg-15', 'lea-phone', login.loginId, login.bindingCode, 'lea-password-1')
    const denied = await expectStatus(redeem('cg-15', login.loginId, instance('cg-evil')), Status.PERMISSION_DENIED)
    assert.equal(denied.reason, 'NOT_OWN_DEVICE')
    const { loginToken } = await redeem('cg-15', login.loginId)
    const am = await t.client('account-management', instance('cg-15'))
    await expectStatus(unaryCall(am, 'validateLoginToken', { requestId: newRequestId(), loginToken, deviceId: 'cg-15' }), Status.PERMISSION_DENIED)
    await expectStatus(appLogin('cg-15', loginToken, instance('cg-evil')), Status.PERMISSION_DENIED)
    assert.equal((await appLogin('cg-15', loginToken)).created, true, 'the token was not consumed by the refused calls')
  })
})
