// The services' rules take the time from the clock their host gives them (deps.clock): moving a
// manual clock past a TTL expires logins, login tokens and orders end to end, over real gRPC, mTLS
// and a real database, with the default TTLs and no sleep.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { ManualClock } from '../../services/runtime/clock.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { isSweeper } from '../../services/runtime/workers.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { createShop, personWithPayers, submitOrder } from '../helpers/people.ts'

const clock = new ManualClock()
let t: TestMesh
let f: ReturnType<typeof flows>
before(async () => {
  t = await startTestMesh({ clock })
  f = flows(t, OPERATOR)
  await createShop(t)
})
after(async () => t?.stop())

const getLogin = async (deviceId: string, loginId: string) => (await unaryCall(await t.client('account-management', instance(deviceId)), 'getLogin', { deviceId, loginId })).login!

test('a login is pending until the clock passes its TTL, then expired: GetLogin says so and the terminal cannot verify it', async () => {
  const ttlMs = t.config.login.loginTtlMs
  await f.setUp('clock-ann', 'ann-password-1', 'clock-dev-1', 'clock-phone-1')
  const login = await f.startLogin('clock-dev-1')
  assert.equal(login.expireTime?.getTime(), clock.now().getTime() + ttlMs, 'the deadline is measured from the services’ clock')
  clock.advance(ttlMs - 1)
  assert.equal((await getLogin('clock-dev-1', login.loginId)).state, LoginState.LOGIN_STATE_PENDING)
  clock.advance(1)
  assert.equal((await getLogin('clock-dev-1', login.loginId)).state, LoginState.LOGIN_STATE_EXPIRED)
  const refused = await expectStatus(f.verify('clock-dev-1', 'clock-phone-1', login.loginId, login.bindingCode, 'ann-password-1'), Status.FAILED_PRECONDITION)
  assert.equal(refused.reason, 'LOGIN_EXPIRED')
})

test('a login token past its TTL is refused by AppService', async () => {
  await f.setUp('clock-bea', 'bea-password-1', 'clock-dev-2', 'clock-phone-2')
  const login = await f.startLogin('clock-dev-2')
  await f.verify('clock-dev-2', 'clock-phone-2', login.loginId, login.bindingCode, 'bea-password-1')
  const { loginToken } = await f.redeem('clock-dev-2', login.loginId)
  clock.advance(t.config.login.tokenTtlMs)
  const refused = await expectStatus(f.appLogin('clock-dev-2', loginToken), Status.UNAUTHENTICATED)
  assert.equal(refused.reason, 'TOKEN_EXPIRED')
})

test('an order past its TTL cannot be prepaid, and the expiry worker ends it', async () => {
  const p = await personWithPayers(t, {
    device: 'clock-dev-3',
    phone: 'clock-phone-3',
    accountId: 'clock-cid',
    password: 'cid-password-1',
    payers: { alpha: 'ALPHACLOCK0001', beta: 'BETACLOCK0001' },
    paymentPassword: 'cid-pay-4711',
    balances: { alpha: 10_000n, beta: 10_000n },
  })
  const { order: submitted } = await submitOrder(t, p, 'gem-pack-100', 1)
  const pm = await t.client('payment-management', terminal(p.phone))
  const { order: fetched } = await unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device })
  assert.equal(fetched!.orderId, submitted.orderId)
  clock.advance(t.config.payment.orderTtlMs)
  const refused = await expectStatus(
    unaryCall(pm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, bindingId: '' }),
    Status.FAILED_PRECONDITION,
  )
  assert.equal(refused.reason, 'ORDER_EXPIRED')
  // The expiry worker's next pass (run now rather than waited for) ends it.
  const expiry = t.mesh.services.find((s) => s.name === 'payment-management')!.workers.find((w) => w.name === 'order-expiry')
  assert.ok(expiry && isSweeper(expiry), 'PaymentManagement runs an order-expiry sweeper')
  await expiry.runNow()
  const { order } = await unaryCall(pm, 'getOrder', { orderId: submitted.orderId })
  assert.equal(order!.state, OrderState.ORDER_STATE_EXPIRED)
})
