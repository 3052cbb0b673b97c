// Paying for an in-app order on the terminal (DESIGN payment steps 0-6) over real gRPC, mTLS and
// a real database, acting as operator, instance, terminal, platform and application. The instance
// never sees a payment account or password; money is never created, lost or moved twice.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { SpanKind } from '@opentelemetry/api'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { AppOrderState } from '../../gen/cloudpay/app/v1/app_service.ts'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OrderState, PaymentResult } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { TransactionState } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { generateKeyPairSync, createPrivateKey } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import { PaymentManagementServiceClient } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { channelCredentials } from '../../services/runtime/tls.ts'
import { signPaymentResult } from '../../services/runtime/payment-signature.ts'
import { issueSeparateDevCertificate } from '../../services/runtime/dev-certificates.ts'
import { loadSealer } from '../../services/runtime/sealing.ts'
import { signingKey } from '../../services/payment-platform/result-keys.ts'
import { flows, instance, terminal } from '../../cli/demo/steps.ts'
import { AheadClock } from '../../services/runtime/clock.ts'
import { isSweeper } from '../../services/runtime/workers.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { createShop, type Person, personWithPayers, submitOrder } from '../helpers/people.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'
import { subscribe } from '../helpers/subscriber.ts'

// Long enough that no order expires while a loaded machine pays it; the tests that need a deadline
// passed move the services' clock past it (time keeps running after, so rechecks still come due).
const ORDER_TTL_MS = 60_000
const clock = new AheadClock()
/** PaymentManagement's expiry sweep interval at that TTL (a quarter of it, at most 5 s): its recheck delay too. */
const EXPIRY_SWEEP_MS = 5_000
const PAYMENT_PASSWORD = 'pay-secret-4711'
const PAYER_ALPHA = 'ALPHAPAYER00012345'
const PAYER_BETA = 'BETAPAYER00067890'
const PLATFORM = { role: 'service', id: 'payment-platform' } as const
const PM = { role: 'service', id: 'payment-management' } as const

let t: TestMesh
before(async () => {
  t = await startTestMesh({ clock, env: { CLOUDPAY_ORDER_TTL_MS: String(ORDER_TTL_MS), CLOUDPAY_RETRY_BASE_MS: '100', CLOUDPAY_RETRY_MAX_MS: '500', CLOUDPAY_PAYMENT_MAX_FAILURES: '3' } })
  await createShop(t)
})
after(async () => t?.stop())

let people = 0
/** A logged-in person: a cloud account, an instance, a terminal, payer accounts bound on both platforms. */
async function person(balances: { alpha: bigint; beta: bigint } = { alpha: 100_000n, beta: 500n }) {
  const n = ++people
  return personWithPayers(t, {
    device: `pay-dev-${n}`,
    phone: `pay-phone-${n}`,
    accountId: `payer${n}`,
    password: `payer-${n}-password`,
    payers: { alpha: `${PAYER_ALPHA}${n}`, beta: `${PAYER_BETA}${n}` },
    paymentPassword: PAYMENT_PASSWORD,
    balances,
  })
}

/** Payment steps 1-2: the instance orders at the application, submits the order, asks on the pipe. */
const order = (p: Person, itemId = 'gem-pack-550', quantity = 2) => submitOrder(t, p, itemId, quantity)

async function fetchAndPrepay(p: Person, bindingId = '') {
  const pm = await t.client('payment-management', terminal(p.phone))
  const { order: fetched } = await unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device })
  const prepaid = await unaryCall(pm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: fetched!.orderId, bindingId })
  return { fetched: fetched!, ...prepaid }
}

async function pay(p: Person, platformId: string, serialNumber: string, password = PAYMENT_PASSWORD, requestId = newRequestId()) {
  const platform = await t.client('payment-platform', terminal(p.phone))
  return unaryCall(platform, 'pay', { requestId, platformId, serialNumber, paymentPassword: password })
}

/** The platform's private result key of a transaction, read as the platform does (tests only). */
async function platformResultKey(serialNumber: string) {
  const db = t.mesh.database.db.withSchema('payment_platform')
  const { result_key_id } = await db.selectFrom('transactions').select('result_key_id').where('serial_number', '=', serialNumber).executeTakeFirstOrThrow()
  return { keyId: result_key_id as string, key: await signingKey(db, await loadSealer(t.config), result_key_id) }
}

async function balance(platformId: string, account: string) {
  const ops = await t.client('payment-platform', OPERATOR)
  return (await unaryCall(ops, 'getAccountBalance', { platformId, account })).account!.balance!.amountMinor
}

async function orderState(orderId: string) {
  const pm = await t.client('payment-management', OPERATOR)
  return (await unaryCall(pm, 'getOrder', { orderId })).order!
}

async function waitForState(orderId: string, state: OrderState, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const current = await orderState(orderId)
    if (current.state === state) return current
    if (Date.now() > deadline) throw new Error(`order ${orderId} stayed ${OrderState[current.state]}, expected ${OrderState[state]}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}


/** PaymentManagement's order-expiry pass, run now (on the running replica) instead of waited for. */
async function sweepExpiredOrders(): Promise<void> {
  const expiry = t.mesh.services.find((s) => s.name === 'payment-management')!.workers.find((w) => w.name === 'order-expiry')
  assert.ok(expiry && isSweeper(expiry), 'PaymentManagement runs an order-expiry sweeper')
  await expiry.runNow()
}

async function inventory(p: Person) {
  const app = await t.client('app-service', instance(p.device))
  const { items } = await unaryCall(app, 'listInventory', { deviceId: p.device, sessionToken: p.session.sessionToken, pageSize: 0, pageToken: '' })
  return Object.fromEntries(items.map((i) => [i.itemId, i.quantity]))
}

/** Every platform's balances sum to zero: the issuance account holds minus what was opened. */
async function assertMoneyConserved() {
  const db = t.mesh.database.db
  const { rows } = await db
    .withSchema('payment_platform')
    .selectFrom('accounts')
    .select(['platform_id', 'currency_code', (eb) => eb.fn.sum<string>('balance_minor').as('total')])
    .groupBy(['platform_id', 'currency_code'])
    .execute()
    .then((r) => ({ rows: r }))
  for (const row of rows) assert.equal(BigInt(row.total), 0n, `money conserved on ${row.platform_id} ${row.currency_code}`)
  const negative = await db.withSchema('payment_platform').selectFrom('accounts').select('masked_number').where('kind', '!=', 'issuance').where('balance_minor', '<', 0n).execute()
  assert.deepEqual(negative, [], 'no account below zero')
}

describe('the payment flow', () => {
  test('order, fetch on the terminal, prepay, pay at the platform: the order takes effect once and the instance is told', async () => {
    const p = await person()
    const instanceEvents = subscribe(await t.client('instance-events', instance(p.device)), p.device)
    try {
      const alphaBefore = await balance('alphapay', p.alpha)
      const shopBefore = await balance('alphapay', 'SHOPALPHA0001')
      const { appOrder, order: submitted } = await order(p)
      assert.equal(appOrder.amountDue!.amountMinor, 2n * (1999n - 200n), "the catalog's price and discount")
      assert.equal(submitted.amount!.amountMinor, appOrder.amountDue!.amountMinor, "PaymentManagement records the application's amount")
      assert.equal(submitted.state, OrderState.ORDER_STATE_SUBMITTED)

      const phoneEvents = subscribe(await t.client('instance-events', terminal(p.phone)), p.device)
      const requested = await phoneEvents.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_PAYMENT_REQUESTED)
      phoneEvents.cancel()
      assert.equal(requested.subjectId, submitted.orderId)

      const accounts = await t.client('account-management', terminal(p.phone))
      const { bindings } = await unaryCall(accounts, 'listPaymentAccounts', { deviceId: p.device, pageSize: 0, pageToken: '' })
      assert.deepEqual(
        bindings.map((b) => [b.platformId, b.maskedPayerAccount, b.isDefault]),
        [
          ['alphapay', `****${p.alpha.slice(-4)}`, true],
          ['betapay', `****${p.beta.slice(-4)}`, false],
        ],
      )

      const { fetched, serialNumber, platformId, order: awaiting } = await fetchAndPrepay(p)
      assert.equal(fetched.orderId, submitted.orderId)
      assert.equal(platformId, 'alphapay', 'the default binding')
      assert.equal(awaiting!.state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
      const { transaction } = await pay(p, platformId, serialNumber)
      assert.equal(transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED)

      const effective = await instanceEvents.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_EFFECTIVE)
      assert.equal(effective.subjectId, submitted.orderId)
      await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
      assert.deepEqual(await inventory(p), { 'gem-pack-550': 2n })
      assert.equal(await balance('alphapay', p.alpha), alphaBefore - 3598n)
      assert.equal(await balance('alphapay', 'SHOPALPHA0001'), shopBefore + 3598n)
      await assertMoneyConserved()
      for (const secret of [PAYMENT_PASSWORD, p.alpha, p.beta]) assert.deepEqual(await findSecret(t, secret), [], `${secret} leaks nowhere`)
    } finally {
      instanceEvents.cancel()
    }
  })

  test('several orders of one device are fetched in arrival order, each once', async () => {
    const p = await person()
    const first = await order(p, 'gem-pack-100', 1)
    const second = await order(p, 'season-pass', 1)
    const third = await order(p, 'gem-pack-100', 3)
    const pm = await t.client('payment-management', terminal(p.phone))
    const fetched = []
    for (let i = 0; i < 3; i++) fetched.push((await unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device })).order!.orderId)
    assert.deepEqual(fetched, [first.order.orderId, second.order.orderId, third.order.orderId])
    const none = await expectStatus(unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device }), Status.NOT_FOUND)
    assert.equal(none.reason, 'NO_ORDER_WAITING')
  })

  test('the person picks another platform than the default', async () => {
    const p = await person({ alpha: 100_000n, beta: 100_000n })
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p, p.betaBinding.bindingId)
    assert.equal(platformId, 'betapay')
    await pay(p, platformId, serialNumber)
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    assert.equal(await balance('betapay', p.beta), 100_000n - 499n)
    assert.equal(await balance('alphapay', p.alpha), 100_000n)
  })
})

describe('failures', () => {
  test('a wrong payment password is refused and counted; the right one then pays; too many lock the account', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const wrong = await expectStatus(pay(p, platformId, serialNumber, 'not-my-password'), Status.PERMISSION_DENIED, '2 attempt(s) left')
    assert.equal(wrong.reason, 'PAYMENT_PASSWORD_WRONG')
    assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT, 'the order stays payable')
    await pay(p, platformId, serialNumber)
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)

    const { platformId: again, serialNumber: next } = await (async () => {
      await order(p, 'gem-pack-100', 1)
      return fetchAndPrepay(p)
    })()
    for (let i = 0; i < 3; i++) await expectStatus(pay(p, again, next, 'wrong'), Status.PERMISSION_DENIED)
    const locked = await expectStatus(pay(p, again, next), Status.RESOURCE_EXHAUSTED)
    assert.equal(locked.reason, 'PAYMENT_LOCKED')
  })

  test('an insufficient balance is refused and the order stays payable', async () => {
    const p = await person({ alpha: 100_000n, beta: 500n })
    const { order: submitted } = await order(p) // 3598 > 500 on betapay
    const { platformId, serialNumber } = await fetchAndPrepay(p, p.betaBinding.bindingId)
    const refused = await expectStatus(pay(p, platformId, serialNumber), Status.FAILED_PRECONDITION, 'lacks funds')
    assert.equal(refused.reason, 'INSUFFICIENT_BALANCE')
    assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
    assert.equal(await balance('betapay', p.beta), 500n)
    await assertMoneyConserved()
  })

  test('cancelling ends an unpaid order, tells the instance, and cancels the prepay at the platform', async () => {
    const p = await person()
    const events = subscribe(await t.client('instance-events', instance(p.device)), p.device)
    try {
      const { order: submitted } = await order(p, 'gem-pack-100', 1)
      const { platformId, serialNumber } = await fetchAndPrepay(p)
      const pm = await t.client('payment-management', terminal(p.phone))
      const { order: cancelled } = await unaryCall(pm, 'cancelOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, reason: 'changed my mind' })
      assert.equal(cancelled!.state, OrderState.ORDER_STATE_CANCELLED)
      const again = await expectStatus(
        unaryCall(pm, 'cancelOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, reason: '' }),
        Status.FAILED_PRECONDITION,
      )
      assert.equal(again.reason, 'ILLEGAL_TRANSITION')
      await events.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_FAILED && e.subjectId === submitted.orderId)
      const platform = await t.client('payment-platform', OPERATOR)
      const deadline = Date.now() + 10_000
      while ((await unaryCall(platform, 'getTransaction', { platformId, serialNumber })).transaction!.state !== TransactionState.TRANSACTION_STATE_CANCELLED) {
        assert.ok(Date.now() < deadline, 'the prepay is cancelled at the platform')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await expectStatus(pay(p, platformId, serialNumber), Status.FAILED_PRECONDITION)
    } finally {
      events.cancel()
    }
  })

  test('an order not paid in time expires', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    await sweepExpiredOrders()
    assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_SUBMITTED, 'not before its deadline')
    clock.passTime(submitted.expireTime)
    await sweepExpiredOrders()
    const expired = await orderState(submitted.orderId)
    assert.equal(expired.state, OrderState.ORDER_STATE_EXPIRED)
    assert.match(expired.endReason, /not paid in time/)
    const pm = await t.client('payment-management', terminal(p.phone))
    await expectStatus(unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device }), Status.NOT_FOUND)
  })
})

describe('exactly once', () => {
  test('AppService down while the payment succeeds: the order is handed over when it is back, and takes effect once', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'season-pass', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    await t.mesh.restart('app-service', async () => {
      await pay(p, platformId, serialNumber)
      await waitForState(submitted.orderId, OrderState.ORDER_STATE_PAID)
      // A few hand-off attempts fail while it is down.
      const deadline = Date.now() + 10_000
      for (;;) {
        const { rows } = await t.mesh.database.db
          .withSchema('payment_management')
          .selectFrom('outbox')
          .select(['attempts'])
          .where('topic', '=', 'fulfil')
          .where('delivered_at', 'is', null)
          .execute()
          .then((r) => ({ rows: r }))
        if (rows.some((r) => r.attempts >= 2)) break
        assert.ok(Date.now() < deadline, 'the hand-off was retried')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    assert.deepEqual(await inventory(p), { 'season-pass': 1n })
  })

  test('duplicate and replayed payment notifications change nothing', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 2)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const { transaction } = await pay(p, platformId, serialNumber)
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    const { keyId, key } = await platformResultKey(serialNumber)
    const fields = {
      keyId,
      platformId,
      serialNumber,
      result: 'SUCCEEDED',
      currencyCode: 'USD',
      amountMinor: transaction!.amount!.amountMinor,
      completeTime: transaction!.completeTime!.toISOString(),
    }
    const asPlatform = await t.client('payment-management', PLATFORM)
    for (let i = 0; i < 3; i++) {
      const { order: reported } = await unaryCall(asPlatform, 'reportPaymentResult', {
        requestId: newRequestId(),
        platformId,
        serialNumber,
        result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
        amount: transaction!.amount,
        completeTime: transaction!.completeTime,
        signature: signPaymentResult(key, fields),
        keyId,
      })
      assert.equal(reported!.state, OrderState.ORDER_STATE_EFFECTIVE)
    }
    assert.deepEqual(await inventory(p), { 'gem-pack-100': 2n }, 'delivered once')
    const forged = await expectStatus(
      unaryCall(asPlatform, 'reportPaymentResult', {
        requestId: newRequestId(),
        platformId,
        serialNumber,
        result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
        amount: { currencyCode: 'USD', amountMinor: 1n },
        completeTime: transaction!.completeTime,
        signature: signPaymentResult(key, fields),
        keyId,
      }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(forged.reason, 'BAD_SIGNATURE')
  })

  test('a retried Pay returns the first outcome and never charges twice; concurrent Pays never overdraw', async () => {
    const p = await person({ alpha: 5_000n, beta: 0n })
    const { order: one } = await order(p) // 3598
    const first = await fetchAndPrepay(p)
    const requestId = newRequestId()
    const paid = await pay(p, first.platformId, first.serialNumber, PAYMENT_PASSWORD, requestId)
    const retried = await pay(p, first.platformId, first.serialNumber, PAYMENT_PASSWORD, requestId)
    assert.deepEqual(retried, paid)
    await expectStatus(pay(p, first.platformId, first.serialNumber), Status.FAILED_PRECONDITION, 'already paid')
    assert.equal(await balance('alphapay', p.alpha), 5_000n - 3598n)
    await waitForState(one.orderId, OrderState.ORDER_STATE_EFFECTIVE)

    // 1402 left: two orders of 999 - 100 = 899 each; only one can be paid.
    await order(p, 'season-pass', 1)
    await order(p, 'season-pass', 1)
    const a = await fetchAndPrepay(p)
    const b = await fetchAndPrepay(p)
    const outcomes = await Promise.allSettled([pay(p, a.platformId, a.serialNumber), pay(p, b.platformId, b.serialNumber)])
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1)
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult
    assert.equal(refused.reason.code, Status.FAILED_PRECONDITION)
    assert.equal(await balance('alphapay', p.alpha), 1402n - 899n)
    await assertMoneyConserved()
  })

  test('PaymentManagement killed between payment and hand-off: after restart the order takes effect once', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-550', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    await t.mesh.restart('payment-management', async () => {
      // The platform's notification cannot be delivered now; it stays in the platform's outbox.
      await pay(p, platformId, serialNumber)
    })
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    assert.deepEqual(await inventory(p), { 'gem-pack-550': 1n })
    await assertMoneyConserved()
  })

  test('an order the application refuses at fulfilment is refunded', async () => {
    const p = await person()
    const { appOrder } = await order(p, 'gem-pack-100', 1)
    // The application itself refuses a hand-off whose amount differs from its order.
    const asPm = await t.client('app-service', PM)
    const mismatch = await expectStatus(
      unaryCall(asPm, 'fulfilOrder', {
        requestId: newRequestId(),
        appOrderId: appOrder.appOrderId,
        paidAmount: { currencyCode: 'USD', amountMinor: 1n },
        paymentOrderId: 'x',
        platformId: 'alphapay',
        serialNumber: 'TX0',
        deviceId: p.device,
      }),
      Status.FAILED_PRECONDITION,
      'does not match',
    )
    assert.equal(mismatch.reason, 'AMOUNT_MISMATCH')
    const app = await t.client('app-service', instance(p.device))
    assert.equal((await unaryCall(app, 'getOrder', { appOrderId: appOrder.appOrderId })).order!.state, AppOrderState.APP_ORDER_STATE_REJECTED)
    // The same order then paid through PaymentManagement: refused at hand-off, refunded in full.
    const alphaBefore = await balance('alphapay', p.alpha)
    const { fetched, platformId, serialNumber } = await fetchAndPrepay(p)
    const { transaction: paid } = await pay(p, platformId, serialNumber)
    await waitForState(fetched.orderId, OrderState.ORDER_STATE_REFUNDED)
    assert.equal(await balance('alphapay', p.alpha), alphaBefore)
    // The platform keeps both times: when it was paid, and when it was refunded.
    const { transaction: refunded } = await unaryCall(await t.client('payment-platform', OPERATOR), 'getTransaction', { platformId, serialNumber })
    assert.equal(refunded!.state, TransactionState.TRANSACTION_STATE_REFUNDED)
    assert.deepEqual(refunded!.completeTime, paid!.completeTime, 'the refund keeps the payment time')
    assert.ok(refunded!.refundTime && refunded!.refundTime >= paid!.completeTime!, 'and records its own')
    assert.equal(paid!.refundTime, undefined)
    assert.deepEqual(await inventory(p), {})
    await assertMoneyConserved()
  })
})

describe('who may do what', () => {
  test('an operator mints no more than the declared opening balance per payer account', async () => {
    const ops = await t.client('payment-platform', OPERATOR)
    const open = (payerAccount: string, amountMinor: bigint) =>
      unaryCall(ops, 'createPayerAccount', { requestId: newRequestId(), platformId: 'alphapay', payerAccount, paymentPassword: PAYMENT_PASSWORD, openingBalance: { currencyCode: 'USD', amountMinor } })
    const refused = await expectStatus(open('MINTPAYER0001', 1_000_001n), Status.INVALID_ARGUMENT, 'CLOUDPAY_OPENING_BALANCE_MAX_MINOR')
    assert.deepEqual(refused.violations.map((v) => v.field), ['opening_balance.amount_minor'])
    assert.equal((await open('MINTPAYER0002', 1_000_000n)).account!.balance!.amountMinor, 1_000_000n)
  })

  test('a payment result counts only under the key the platform gave for that prepay, whoever holds a platform certificate', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const { keyId } = await platformResultKey(serialNumber)
    // A freshly issued payment-platform certificate (what `cloudpay cert service payment-platform` hands out).
    const fresh = await issueSeparateDevCertificate(t.config.home, PLATFORM, 'forger')
    const forger = createClient(PaymentManagementServiceClient, t.address('payment-management'), channelCredentials(fresh, 200))
    try {
      const fields = { platformId, serialNumber, result: 'SUCCEEDED', currencyCode: 'USD', amountMinor: submitted.amount!.amountMinor, completeTime: new Date().toISOString() }
      const forgedKeys = {
        'its own TLS key': createPrivateKey(await readFile(fresh.keyFile, 'utf8')),
        'a new Ed25519 key': generateKeyPairSync('ed25519').privateKey,
      }
      for (const [what, key] of Object.entries(forgedKeys)) {
        for (const claimedKeyId of [keyId, 'rk-made-up']) {
          let signature: string
          try {
            signature = signPaymentResult(key, { ...fields, keyId: claimedKeyId })
          } catch {
            signature = 'AAAA' // an ECDSA key cannot make an Ed25519 signature: send garbage instead
          }
          const refused = await expectStatus(
            unaryCall(forger, 'reportPaymentResult', {
              requestId: newRequestId(),
              platformId,
              serialNumber,
              result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
              amount: submitted.amount,
              completeTime: new Date(fields.completeTime),
              signature,
              keyId: claimedKeyId,
            }),
            Status.PERMISSION_DENIED,
          )
          assert.equal(refused.reason, 'BAD_SIGNATURE', `${what} under ${claimedKeyId}`)
        }
      }
    } finally {
      forger.close()
    }
    assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT, 'nothing was delivered for a forged result')
    const ops = await t.client('payment-platform', OPERATOR)
    const { transaction } = await unaryCall(ops, 'getTransaction', { platformId, serialNumber })
    assert.equal(transaction!.state, TransactionState.TRANSACTION_STATE_PENDING)
  })

  test('a terminal without a channel to the order device can neither pay nor read its transaction, and its wrong passwords never lock the payer', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const stranger = await t.client('payment-platform', terminal('pay-phone-stranger'))
    for (let i = 0; i < 5; i++) {
      const refused = await expectStatus(
        unaryCall(stranger, 'pay', { requestId: newRequestId(), platformId, serialNumber, paymentPassword: 'guess-' + i }),
        Status.PERMISSION_DENIED,
      )
      assert.equal(refused.reason, 'TERMINAL_NOT_ALLOWED')
    }
    await expectStatus(unaryCall(stranger, 'pay', { requestId: newRequestId(), platformId, serialNumber, paymentPassword: PAYMENT_PASSWORD }), Status.PERMISSION_DENIED)
    await expectStatus(unaryCall(stranger, 'getTransaction', { platformId, serialNumber }), Status.PERMISSION_DENIED)
    // A serial that does not exist looks the same to a stranger as one that does.
    await expectStatus(unaryCall(stranger, 'getTransaction', { platformId, serialNumber: 'TX00000000000000000000' }), Status.PERMISSION_DENIED)
    const own = await t.client('payment-platform', terminal(p.phone))
    assert.equal((await unaryCall(own, 'getTransaction', { platformId, serialNumber })).transaction!.state, TransactionState.TRANSACTION_STATE_PENDING)
    const { transaction } = await pay(p, platformId, serialNumber)
    assert.equal(transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED, 'the payer was not locked out')
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
  })

  test('a terminal of another device can neither fetch nor prepay the order', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const stranger = await t.client('payment-management', terminal('pay-phone-stranger'))
    await expectStatus(unaryCall(stranger, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device }), Status.PERMISSION_DENIED, 'no open channel')
    await expectStatus(unaryCall(stranger, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: submitted.orderId, bindingId: '' }), Status.PERMISSION_DENIED)
    await expectStatus(unaryCall(stranger, 'getOrder', { orderId: submitted.orderId }), Status.PERMISSION_DENIED)
  })

  test('an instance can neither report payment results, nor fulfil, nor see payment accounts', async () => {
    const p = await person()
    const { appOrder, order: submitted } = await order(p, 'gem-pack-100', 1)
    const pm = await t.client('payment-management', instance(p.device))
    await expectStatus(
      unaryCall(pm, 'reportPaymentResult', {
        requestId: newRequestId(),
        platformId: 'alphapay',
        serialNumber: 'TX1',
        result: PaymentResult.PAYMENT_RESULT_SUCCEEDED,
        amount: submitted.amount,
        completeTime: new Date(),
        signature: 'x',
        keyId: 'k',
      }),
      Status.PERMISSION_DENIED,
    )
    const app = await t.client('app-service', instance(p.device))
    await expectStatus(
      unaryCall(app, 'fulfilOrder', {
        requestId: newRequestId(),
        appOrderId: appOrder.appOrderId,
        paidAmount: appOrder.amountDue,
        paymentOrderId: submitted.orderId,
        platformId: 'alphapay',
        serialNumber: 'TX1',
        deviceId: p.device,
      }),
      Status.PERMISSION_DENIED,
    )
    const am = await t.client('account-management', instance(p.device))
    await expectStatus(unaryCall(am, 'listPaymentAccounts', { deviceId: p.device, pageSize: 0, pageToken: '' }), Status.PERMISSION_DENIED)
    await expectStatus(unaryCall(am, 'resolvePaymentAccount', { deviceId: p.device, bindingId: '' }), Status.PERMISSION_DENIED)
    // Another device's application order cannot be submitted as one's own.
    const other = await person()
    const otherPm = await t.client('payment-management', instance(other.device))
    const stolen = await expectStatus(
      unaryCall(otherPm, 'submitOrder', { requestId: newRequestId(), deviceId: other.device, appOrderId: appOrder.appOrderId }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(stolen.reason, 'NOT_OWN_ORDER')
  })
})

describe('deliveries that can never succeed', () => {
  test('a payment result PaymentManagement refuses for good ends as a dead letter with its reason: logged once, counted, not retried', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    // PaymentManagement holds another key for this prepay than the one the platform signs with:
    // every delivery of this result is refused (BAD_SIGNATURE), and no retry can change that.
    const pmDb = t.mesh.database.db.withSchema('payment_management')
    await pmDb
      .updateTable('orders')
      .set({ result_public_key: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }) })
      .where('order_id', '=', submitted.orderId)
      .execute()
    await pay(p, platformId, serialNumber)
    const outbox = t.mesh.database.db.withSchema('payment_platform').selectFrom('outbox').selectAll().where('topic', '=', 'payment-result')
    const deadline = Date.now() + 15_000
    let dead
    while (!(dead = await outbox.where('payload', '@>', JSON.stringify({ serial_number: serialNumber })).where('dead_at', 'is not', null).executeTakeFirst())) {
      assert.ok(Date.now() < deadline, 'the refused result was dead-lettered')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    assert.match(dead.dead_reason, /PERMISSION_DENIED: signature does not verify/)
    assert.equal(dead.delivered_at, null)
    assert.equal(dead.attempts, 1, 'a permanent refusal is not retried')
    const platformService = t.mesh.services.find((s) => s.name === 'payment-platform')!
    assert.ok(platformService.introspect().outbox_dead_letters! >= 1, 'counted where an alert can see it')
    const lines = t.logLines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.level === 'error' && line.delivery_id === dead.delivery_id)
    assert.equal(lines.length, 1, 'logged at error level once')
    assert.equal(lines[0]!.topic, 'payment-result')
    assert.match(String(lines[0]!.reason), /signature/)

    // Later results are delivered (the outbox kept working) while the dead one stays as it was.
    const other = await person()
    const { order: next } = await order(other, 'gem-pack-100', 1)
    const prepaid = await fetchAndPrepay(other)
    await pay(other, prepaid.platformId, prepaid.serialNumber)
    await waitForState(next.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    const after = await outbox.where('delivery_id', '=', dead.delivery_id).executeTakeFirstOrThrow()
    assert.equal(after.attempts, 1, 'never attempted again')
    assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT, 'nothing was applied for the refused result')
  })
})

describe("an order's deadline and its payment", () => {
  test("the prepay carries the order's deadline: the platform's transaction expires with the order", async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const { transaction } = await unaryCall(await t.client('payment-platform', OPERATOR), 'getTransaction', { platformId, serialNumber })
    assert.deepEqual(transaction!.expireTime, submitted.expireTime, 'not the platform’s own CLOUDPAY_PREPAY_TTL_MS')
  })

  test('paid in time while PaymentManagement is down, reported after the deadline: never expired meanwhile, then applied once', async () => {
    const p = await person()
    const alphaBefore = await balance('alphapay', p.alpha)
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const lines = (from: number) => t.logLines.slice(from).map((line) => JSON.parse(line) as Record<string, unknown>)
    const waitForLog = async (from: number, message: RegExp) => {
      const deadline = Date.now() + 20_000
      while (!lines(from).some((line) => line.order_id === submitted.orderId && message.test(String(line.msg)))) {
        assert.ok(Date.now() < deadline, `PaymentManagement logged ${message} for the order`)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const report = () =>
      t.mesh.database.db
        .withSchema('payment_platform')
        .updateTable('outbox')
        .where('topic', '=', 'payment-result')
        .where('payload', '@>', JSON.stringify({ serial_number: serialNumber }))
    let upPm: (() => Promise<unknown>) | undefined = await t.mesh.takeDown('payment-management')
    let upPlatform: (() => Promise<unknown>) | undefined
    try {
      // The platform takes the payment (the prepay's own terminal may pay while PaymentManagement is away).
      const { transaction } = await pay(p, platformId, serialNumber)
      assert.equal(transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED)
      assert.ok(transaction!.completeTime! <= submitted.expireTime!, 'paid before the deadline')
      // Its result is held back: first the platform is down too, then its retry is far off.
      upPlatform = await t.mesh.takeDown('payment-platform')
      await report()
        .set({ next_attempt_at: new Date(Date.now() + 3_600_000) })
        .execute()
      clock.passTime(submitted.expireTime)

      // PaymentManagement is back after the deadline; the platform cannot be asked: not expired.
      let mark = t.logLines.length
      await upPm()
      upPm = undefined
      await sweepExpiredOrders()
      await waitForLog(mark, /could not be asked/)
      assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
      // The platform is back and says it was paid: still not expired, the report is awaited.
      mark = t.logLines.length
      await upPlatform()
      upPlatform = undefined
      clock.advance(EXPIRY_SWEEP_MS + 1) // past the recheck of an order whose platform could not be asked
      await sweepExpiredOrders()
      await waitForLog(mark, /is paid at its platform/)
      assert.equal((await orderState(submitted.orderId)).state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
    } finally {
      await upPm?.()
      await upPlatform?.()
    }
    // The result, signed with its completion time before the deadline, lands late and counts.
    await report().set({ next_attempt_at: new Date() }).execute()
    const effective = await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    assert.equal(effective.endReason, '')
    assert.deepEqual(await inventory(p), { 'gem-pack-100': 1n }, 'delivered once')
    assert.equal(await balance('alphapay', p.alpha), alphaBefore - 499n, 'charged once, not refunded')
    await assertMoneyConserved()
  })
})

describe('retries of one request (AIP-155): the first answer, whatever state checks run first', () => {
  /** Every outcome fulfilled and equal to the first. */
  function assertAllSame<T>(outcomes: PromiseSettledResult<T>[], what: string): T {
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => `${Status[o.reason.code]}: ${o.reason.details}`)
    assert.deepEqual(refused, [], `every ${what} got the answer`)
    const values = outcomes.map((o) => (o as PromiseFulfilledResult<T>).value)
    for (const value of values) assert.deepEqual(value, values[0], `every ${what} got the same answer`)
    return values[0]!
  }

  /**
   * `n` identical calls, started `everyMs` apart (so some arrive while the first is at each of
   * its steps, some just as it commits), all settled.
   */
  async function identical<T>(n: number, everyMs: number, call: () => Promise<T>): Promise<PromiseSettledResult<T>[]> {
    const calls: Promise<T>[] = []
    for (let i = 0; i < n; i++) {
      calls.push(call())
      await new Promise((resolve) => setTimeout(resolve, everyMs))
    }
    return Promise.allSettled(calls)
  }

  /**
   * How often a step of the calls ran: server spans of an RPC (or database spans of a query)
   * tagged with the object. A duplicate that waits for the first call runs none of its steps,
   * so none of its state checks can see the first call's effect and refuse.
   */
  const ran = (tag: string, value: string, span: { rpc?: string; query?: RegExp; name?: string }) =>
    t.spans
      .getFinishedSpans()
      .filter((s) => s.attributes[tag] === value)
      .filter((s) =>
        span.rpc ? s.kind === SpanKind.SERVER && s.name === span.rpc : span.name ? s.name === span.name : span.query!.test(String(s.attributes['db.query.text'] ?? '')),
      ).length

  test('identical concurrent Pays: one payment, the same successful answer to all; a retry after them too', async () => {
    const p = await person()
    const alphaBefore = await balance('alphapay', p.alpha)
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const requestId = newRequestId()
    const first = assertAllSame(await identical(16, 4, () => pay(p, platformId, serialNumber, PAYMENT_PASSWORD, requestId)), 'Pay')
    assert.equal(first.transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED)
    assert.deepEqual(await pay(p, platformId, serialNumber, PAYMENT_PASSWORD, requestId), first)
    assert.equal(ran('cloudpay.order_id', submitted.orderId, { rpc: 'cloudpay.payment.v1.PaymentManagementService/AuthorizeTerminal' }), 1, 'the checks ran once')
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    assert.equal(await balance('alphapay', p.alpha), alphaBefore - 499n, 'charged once')
    await assertMoneyConserved()
  })

  test('identical concurrent PrepayOrders, and identical concurrent VerifyLogins: the same successful answer to all', async () => {
    const p = await person()
    await order(p, 'gem-pack-100', 1)
    const pm = await t.client('payment-management', terminal(p.phone))
    const { order: fetched } = await unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device })
    const prepay = { requestId: newRequestId(), deviceId: p.device, orderId: fetched!.orderId, bindingId: '' }
    const prepaid = assertAllSame(await identical(16, 2, () => unaryCall(pm, 'prepayOrder', prepay)), 'PrepayOrder')
    assert.equal(prepaid.order!.state, OrderState.ORDER_STATE_AWAITING_PAYMENT)
    assert.equal(ran('cloudpay.order_id', fetched!.orderId, { rpc: 'cloudpay.platform.v1.PaymentPlatformService/CreatePrepay' }), 1, 'prepaid once')

    const login = await flows(t, OPERATOR).startLogin(p.device)
    const am = await t.client('account-management', terminal(p.phone))
    const verify = { requestId: newRequestId(), deviceId: p.device, loginId: login.loginId, bindingCode: login.bindingCode, password: `payer-${p.device.split('-').pop()}-password` }
    const verified = assertAllSame(await identical(16, 4, () => unaryCall(am, 'verifyLogin', verify)), 'VerifyLogin')
    assert.equal(verified.login!.state, LoginState.LOGIN_STATE_VERIFIED)
    assert.equal(ran('cloudpay.login_id', login.loginId, { name: 'password verify' }), 1, 'the password was checked once')
  })

  test('a Pay whose client deadline expired, retried at once and again while it runs: every retry gets the first answer', async () => {
    const p = await person()
    const { order: submitted } = await order(p, 'gem-pack-100', 1)
    const { platformId, serialNumber } = await fetchAndPrepay(p)
    const requestId = newRequestId()
    const platform = await t.client('payment-platform', terminal(p.phone))
    // The client gives up long before the server finishes (the password hash alone takes longer).
    await expectStatus(unaryCall(platform, 'pay', { requestId, platformId, serialNumber, paymentPassword: PAYMENT_PASSWORD }, { deadlineMs: 15 }), Status.DEADLINE_EXCEEDED)
    const answer = assertAllSame(await identical(16, 4, () => pay(p, platformId, serialNumber, PAYMENT_PASSWORD, requestId)), 'retried Pay')
    assert.equal(answer.transaction!.state, TransactionState.TRANSACTION_STATE_SUCCEEDED)
    // The first call (its client gone) ran on; the retries waited for it, or found its answer.
    assert.ok(ran('cloudpay.order_id', submitted.orderId, { rpc: 'cloudpay.payment.v1.PaymentManagementService/AuthorizeTerminal' }) <= 2, 'the retries did not run the checks again')
    await waitForState(submitted.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    await assertMoneyConserved()
  })
})
