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
import { verifySealingKeys } from '../../services/runtime/sealed-credentials.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { readFile } from 'node:fs/promises'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
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
  instance.close()
  terminal.close()
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

test('a pushed order through the terminal SDK alone: both enrolled terminals told, one claims by a tap and pays through PaymentManagement, the other told; the own stream resumes across an InstanceEvents restart', async () => {
  const [device, channelPhone, password, payPassword, payer] = ['sdk-push-dev', 'sdk-push-login', 'sdk push password', 'sdk-push-pay-1', 'SDKPUSHPAYER0001']
  await flows(t, OPERATOR).setUp('sdk-push-account', password, device, channelPhone)
  const ops = await t.client('payment-platform', OPERATOR)
  await unaryCall(ops, 'createMerchantAccount', { requestId: newRequestId(), platformId: 'alphapay', merchantId: 'demo-shop', collectionAccount: 'SHOPALPHA0001', currencyCode: 'USD' }).catch(
    (error: { code?: number }) => assert.equal(error.code, Status.ALREADY_EXISTS),
  )
  await unaryCall(ops, 'createPayerAccount', { requestId: newRequestId(), platformId: 'alphapay', payerAccount: payer, paymentPassword: payPassword, openingBalance: { currencyCode: 'USD', amountMinor: 100_000n } })
  await terminalSdk(t, channelPhone).bindPaymentAccount(device, 'alphapay', payer, true)
  const session = await flows(t, OPERATOR).logIn(device, channelPhone, password)

  const instance = instanceSdk(t, device)
  const [watch, tablet] = [terminalSdk(t, 'sdk-push-watch'), terminalSdk(t, 'sdk-push-tablet')]
  const caFile = (await certificateFiles(t.config, OPERATOR)).caFile
  try {
    assert.equal((await watch.enroll('sdk-push-account', password, 'the watch')).accountId, 'sdk-push-account')
    await tablet.enroll('sdk-push-account', password, 'the tablet')
    const pushed = (orderId: string) => (e: { kind: EventKind; subjectId: string }) => e.kind === EventKind.EVENT_KIND_PAYMENT_PUSHED && e.subjectId === orderId

    // The tablet's stream is open when InstanceEvents restarts; an order submitted while it is down
    // is pushed once it is back, and the SDK's subscription resumes without missing or repeating it.
    const { order: first } = await instance.order(session.sessionToken, 'gem-pack-100', 1)
    const firstOnTablet = await tablet.nextPush(pushed(first.orderId))
    let second: Awaited<ReturnType<typeof instance.order>>['order'] | undefined
    await t.mesh.restart('instance-events', async () => {
      // Ordered and submitted (the push is queued); the pipe's PAYMENT_REQUESTED would wait for InstanceEvents.
      const app = await t.client('app-service', { role: 'instance', id: device })
      const { order: appOrder } = await unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: device, sessionToken: session.sessionToken, itemId: 'gem-pack-100', quantity: 1 })
      const pm = await t.client('payment-management', { role: 'instance', id: device })
      second = (await unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: device, appOrderId: appOrder!.appOrderId })).order
    })
    const secondOnTablet = await tablet.nextPush(pushed(second!.orderId), { signal: AbortSignal.timeout(30_000) })
    assert.equal(secondOnTablet.sequence, firstOnTablet.sequence + 1n, 'resumed after the last event seen: none missed, none twice')

    // The watch claims the second order with a lift, prepays and pays through the relay alone.
    await watch.nextPush(pushed(second!.orderId))
    const outcome = instance.waitForOutcome(second!.orderId)
    const claimed = await watch.claimOrder(second!.orderId, 'lift')
    const prepaid = await watch.prepay(device, claimed.orderId)
    await watch.payThroughRelay({ deviceId: device, order: claimed, platformId: prepaid.platformId, serialNumber: prepaid.serialNumber }, payPassword, caFile)
    const told = await tablet.nextPush((e) => e.kind === EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE && e.subjectId === second!.orderId)
    assert.equal(told.sequence, secondOnTablet.sequence + 1n)
    assert.equal(await outcome, 'effective')

    // The tablet's claim comes too late: a typed refusal with the reason.
    const late = await tablet.claimOrder(second!.orderId, 'tap').then(
      () => assert.fail('a second claim won'),
      (error: unknown) => error,
    )
    assert.ok(late instanceof CloudpayCallError)
    assert.equal(late.code, Status.FAILED_PRECONDITION)
  } finally {
    instance.close()
    watch.close()
    tablet.close()
  }
})

test('PaymentManagement relays the platform’s sealing keys unchanged; a key it altered would fail the terminal’s check', async () => {
  const terminal = { role: 'terminal', id: 'sdk-keys-phone' } as const
  const relayed = await unaryCall(await t.client('payment-management', terminal), 'getSealingKeys', { platformId: 'alphapay' })
  const direct = await unaryCall(await t.client('payment-platform', terminal), 'getSealingKeys', { platformId: 'alphapay' })
  // The same keys and certificate (signatures are fresh each time: ECDSA).
  const keysOf = (published: typeof relayed) => published.keys.map((k) => [k.keyId, Buffer.from(k.publicKey).toString('hex'), k.notAfter?.toISOString()])
  assert.deepEqual(keysOf(relayed), keysOf(direct))
  assert.deepEqual(relayed.certificateChain, direct.certificateChain)
  const ca = await readFile((await certificateFiles(t.config, OPERATOR)).caFile, 'utf8')
  assert.equal(verifySealingKeys(relayed, { platformId: 'alphapay', caCertificates: ca }).length, relayed.keys.length)
  const altered = { ...relayed, keys: relayed.keys.map((k, i) => (i === 0 ? { ...k, publicKey: Buffer.alloc(32, 7) } : k)) }
  assert.throws(() => verifySealingKeys(altered, { platformId: 'alphapay', caCertificates: ca }))
  await expectStatus(unaryCall(await t.client('payment-management', terminal), 'getSealingKeys', { platformId: 'x'.repeat(300) }), Status.INVALID_ARGUMENT, 'platform_id')
})
