// Numbers and sizes are bounded for trusted callers too, with every other field valid: what the
// attacker's checks found (an opening balance of int64 max overflowing a balance sum, a result
// timestamp of 2^62 s, a huge binding_id reaching AccountManagement) is refused at the edge.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { create, toBinary } from '@bufbuild/protobuf'
import { status as Status } from '@grpc/grpc-js'
import { unaryCall } from '../../services/runtime/client.ts'
import { descriptorRegistry } from '../../services/runtime/descriptor-image.ts'
import { MAX_AMOUNT_MINOR } from '../../services/runtime/validation.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, TERMINAL, type TestMesh } from '../helpers/mesh.ts'
import { rawCall, rawClient } from '../helpers/raw-call.ts'

let t: TestMesh
before(async () => {
  // The operator's issuance cap as high as any amount may be, so the amount bound itself is what is tested.
  t = await startTestMesh({ env: { CLOUDPAY_OPENING_BALANCE_MAX_MINOR: String(MAX_AMOUNT_MINOR) } })
})
after(async () => {
  await t?.stop()
})

test('an opening balance beyond the declared maximum is INVALID_ARGUMENT naming it; the maximum itself is accepted', async () => {
  const platform = await t.client('payment-platform', OPERATOR)
  const open = (payerAccount: string, amountMinor: bigint) =>
    unaryCall(platform, 'createPayerAccount', {
      requestId: newRequestId(),
      platformId: 'alphapay',
      payerAccount,
      paymentPassword: 'pay-secret-1',
      openingBalance: { currencyCode: 'USD', amountMinor },
    })
  for (const amount of [2n ** 63n - 1n, MAX_AMOUNT_MINOR + 1n]) {
    const { violations } = await expectStatus(open('BOUNDS000001', amount), Status.INVALID_ARGUMENT)
    assert.deepEqual(violations.map((v) => v.field), ['opening_balance.amount_minor'])
  }
  const { account } = await open('BOUNDS000002', MAX_AMOUNT_MINOR)
  assert.equal(account?.balance?.amountMinor, MAX_AMOUNT_MINOR)
  // Neither the password nor the account number reached a log line or a span.
  await t.telemetry.forceFlush()
  const traced = JSON.stringify(t.spans.getFinishedSpans().map((s) => [s.attributes, s.events]))
  for (const secret of ['pay-secret-1', 'BOUNDS000002']) {
    assert.ok(!t.logLines.some((line) => line.includes(secret)), `${secret} in a log line`)
    assert.ok(!traced.includes(secret), `${secret} in a span`)
  }
})

test('a payment result from the platform with a timestamp of 2^62 s is INVALID_ARGUMENT naming complete_time', async () => {
  const registry = descriptorRegistry()
  const method = registry.getService('cloudpay.payment.v1.PaymentManagementService')!.method.reportPaymentResult!
  const body = toBinary(
    method.input,
    create(method.input, {
      requestId: newRequestId(),
      platformId: 'alphapay',
      serialNumber: 'TX0123456789ABCDEF0123',
      result: 1,
      amount: { currencyCode: 'USD', amountMinor: 100n },
      completeTime: { seconds: 2n ** 62n, nanos: 0 },
      signature: 'A'.repeat(96),
    }),
  )
  const client = rawClient(t.address('payment-management'), await t.credentials({ role: 'service', id: 'payment-platform' }))
  try {
    const outcome = await rawCall(client, method, Buffer.from(body))
    assert.equal(outcome.code, Status.INVALID_ARGUMENT, outcome.details)
    assert.deepEqual(outcome.violations.map((v) => v.field), ['complete_time'])
  } finally {
    client.close()
  }
})

test('PrepayOrder refuses an oversized binding_id before it calls any other service', async () => {
  const payments = await t.client('payment-management', TERMINAL)
  await t.telemetry.forceFlush()
  t.spans.reset()
  const request = { requestId: newRequestId(), deviceId: 'some-device', orderId: newRequestId(), bindingId: 'b'.repeat(1000) }
  const { violations } = await expectStatus(unaryCall(payments, 'prepayOrder', request), Status.INVALID_ARGUMENT, 'binding_id')
  assert.deepEqual(violations.map((v) => v.field), ['binding_id'])
  await t.telemetry.forceFlush()
  const servers = new Set(t.spans.getFinishedSpans().map((s) => s.name.split('/')[0]))
  assert.deepEqual([...servers].filter((name) => !name?.includes('PaymentManagementService')), [], 'no other service was called')
})
