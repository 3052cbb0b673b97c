// The SDK both devices integrate with, over the real mesh: the instance and the terminal each do
// their part of a login and of a payment through the relay one typed call per step; refusals are
// typed errors naming the field; AbortSignal cancels a wait; retries keep one request id.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { flows, OPERATOR } from '../../cli/demo/steps.ts'
import { CloudpayCallError, step } from '../../sdk/calls.ts'
import { instanceSdk } from '../../sdk/instance.ts'
import { terminalSdk } from '../../sdk/terminal.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { newRequestId } from '../helpers/grpc.ts'
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts'

let t: TestMesh
before(async () => {
  t = await startTestMesh()
})
after(async () => t?.stop())

test('login and a payment through the relay, each step one SDK call on each device', async () => {
  const [device, phone, password, payPassword, payer] = ['sdk-dev', 'sdk-phone', 'sdk password 1', 'sdk-pay-4711', 'SDKPAYER000111']
  await flows(t, OPERATOR).setUp('sdk-account', password, device, phone)
  const ops = await t.client('payment-platform', OPERATOR)
  await unaryCall(ops, 'createMerchantAccount', { requestId: newRequestId(), platformId: 'alphapay', merchantId: 'demo-shop', collectionAccount: 'SHOPALPHA0001', currencyCode: 'USD' })
  await unaryCall(ops, 'createPayerAccount', { requestId: newRequestId(), platformId: 'alphapay', payerAccount: payer, paymentPassword: payPassword, openingBalance: { currencyCode: 'USD', amountMinor: 100_000n } })
  const accounts = await t.client('account-management', { role: 'terminal', id: phone })
  await unaryCall(accounts, 'bindPaymentAccount', { requestId: newRequestId(), deviceId: device, platformId: 'alphapay', payerAccount: payer, makeDefault: true })

  const instance = instanceSdk(t, device)
  const terminal = terminalSdk(t, phone)
  // Login: the instance asks, the phone approves, the instance is woken and logs in.
  const login = await instance.startLogin()
  const asked = await terminal.nextEvent(device, (e) => e.kind === EventKind.EVENT_KIND_LOGIN_REQUESTED)
  assert.equal(asked.subjectId, login.loginId)
  const outcome = instance.waitForLogin(login.loginId)
  await terminal.approveLogin(device, login.loginId, login.bindingCode, password)
  assert.equal(await outcome, 'verified')
  const session = await instance.logIn(login.loginId)
  assert.match(session.appAccount!.displayName, /^cloud platform guest \d{6}$/)

  // Payment: the instance orders, the phone fetches, prepays and pays through the relay.
  const { order } = await instance.order(session.sessionToken, 'gem-pack-100', 1)
  const result = instance.waitForOutcome(order.orderId)
  await terminal.nextEvent(device, (e) => e.kind === EventKind.EVENT_KIND_PAYMENT_REQUESTED && e.subjectId === order.orderId)
  const fetched = await terminal.fetchOrder(device)
  const prepaid = await terminal.prepay(device, fetched.orderId)
  const caFile = (await certificateFiles(t.config, OPERATOR)).caFile
  await terminal.payThroughRelay({ deviceId: device, order: fetched, platformId: prepaid.platformId, serialNumber: prepaid.serialNumber }, payPassword, caFile)
  assert.equal(await result, 'effective')

  // A refusal is a typed error with the code, the reason and the field.
  const refused = await terminal.prepay(device, 'not-an-order').then(
    () => assert.fail('prepaid a made-up order'),
    (error: unknown) => error,
  )
  assert.ok(refused instanceof CloudpayCallError)
  assert.equal(refused.code, Status.INVALID_ARGUMENT)
  assert.deepEqual(
    refused.violations.map((v) => v.field),
    ['order_id'],
  )
})

test('a wait is cancelled by its AbortSignal', async () => {
  const instance = instanceSdk(t, 'sdk-waiting-dev')
  const controller = new AbortController()
  const waiting = instance.waitForOutcome('no-such-order', { signal: controller.signal })
  controller.abort(new Error('the player left'))
  await assert.rejects(waiting, /the player left/)
})

test('a step retries UNAVAILABLE with the same request id, and gives up on a refusal at once', async () => {
  const seen: string[] = []
  const answer = await step(async (requestId) => {
    seen.push(requestId)
    if (seen.length < 3) throw Object.assign(new Error('unavailable'), { code: Status.UNAVAILABLE, details: 'down', metadata: undefined })
    return 'done'
  })
  assert.equal(answer, 'done')
  assert.equal(seen.length, 3)
  assert.equal(new Set(seen).size, 1, 'one request id across the retries')
  let attempts = 0
  await assert.rejects(
    step(async () => {
      attempts++
      throw Object.assign(new Error('refused'), { code: Status.FAILED_PRECONDITION, details: 'no', metadata: undefined })
    }),
    (error: unknown) => error instanceof CloudpayCallError && error.code === Status.FAILED_PRECONDITION,
  )
  assert.equal(attempts, 1)
})
