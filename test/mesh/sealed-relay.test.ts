// Paying through the sealed relay (docs/design.md, "Sealed relay") over real gRPC, mTLS and a
// real database: the terminal seals its payment password (and maybe the payer account) to the
// platform's published HPKE key, PaymentManagement relays the bytes it cannot read, and the
// platform opens them against its own transaction and pays exactly as Pay does.
import assert from 'node:assert/strict'
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { type GetSealingKeysResponse, TransactionState } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { instance, terminal } from '../../cli/demo/steps.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { ensureDevCertificate, issueSeparateDevCertificate } from '../../services/runtime/dev-certificates.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import {
  type Credentials,
  type PublicSealingKey,
  sealCredentials,
  sealingAad,
  SealingKeysRefused,
  signSealingKey,
  verifySealingKeys,
} from '../../services/runtime/sealed-credentials.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'
import { subscribe } from '../helpers/subscriber.ts'
import { createShop, type Person, personWithPayers, submitOrder } from '../helpers/people.ts'

const PAYMENT_PASSWORD = 'relay-secret-8128'
const PAYER_ALPHA = 'RELAYALPHA000'
const PAYER_BETA = 'RELAYBETA000'
const ROTATION_MS = 3_600_000
const GRACE_MS = 600_000
const PLATFORM: Identity = { role: 'service', id: 'payment-platform' }
const PM: Identity = { role: 'service', id: 'payment-management' }

let t: TestMesh
let meshCa: Buffer
before(async () => {
  t = await startTestMesh({
    env: {
      CLOUDPAY_RETRY_BASE_MS: '100',
      CLOUDPAY_RETRY_MAX_MS: '500',
      CLOUDPAY_PAYMENT_MAX_FAILURES: '3',
      CLOUDPAY_SEALING_KEY_ROTATION_MS: String(ROTATION_MS),
      CLOUDPAY_SEALING_KEY_GRACE_MS: String(GRACE_MS),
    },
  })
  meshCa = await readFile((await certificateFiles(t.config, OPERATOR)).caFile)
  await createShop(t)
})
after(async () => t?.stop())

let people = 0
/** A logged-in person: a cloud account, an instance, a terminal, payer accounts bound on both platforms (alphapay the default). */
async function person(balances: { alpha: bigint; beta: bigint } = { alpha: 100_000n, beta: 100_000n }) {
  const n = ++people
  return personWithPayers(t, {
    device: `relay-dev-${n}`,
    phone: `relay-phone-${n}`,
    accountId: `relay${n}`,
    password: `relay-${n}-password`,
    payers: { alpha: `${PAYER_ALPHA}${n}`, beta: `${PAYER_BETA}${n}` },
    paymentPassword: PAYMENT_PASSWORD,
    balances,
  })
}

/** The instance orders, submits and asks on the pipe; the terminal fetches and prepays (with the default binding unless told). */
async function prepaidOrder(p: Person, itemId = 'gem-pack-100', quantity = 1, bindingId = '') {
  const { order: submitted } = await submitOrder(t, p, itemId, quantity)
  const pm = await t.client('payment-management', terminal(p.phone))
  const { order: fetched } = await unaryCall(pm, 'fetchOrder', { requestId: newRequestId(), deviceId: p.device })
  assert.equal(fetched!.orderId, submitted.orderId)
  const { order, platformId, serialNumber } = await unaryCall(pm, 'prepayOrder', { requestId: newRequestId(), deviceId: p.device, orderId: fetched!.orderId, bindingId })
  return { order: order!, platformId, serialNumber, amount: order!.amount! }
}
type Prepaid = Awaited<ReturnType<typeof prepaidOrder>>

/** The platform's published keys, as a terminal fetches them and checks them against the mesh CA. */
async function fetchKeys(platformId: string, as: Identity = terminal('relay-key-reader')): Promise<GetSealingKeysResponse> {
  return unaryCall(await t.client('payment-platform', as), 'getSealingKeys', { platformId })
}
async function verifiedKeys(platformId: string): Promise<PublicSealingKey[]> {
  return verifySealingKeys(await fetchKeys(platformId), { platformId, caCertificates: meshCa })
}

/** Seals credentials for the prepaid transaction (or what `aadFor` says instead) to the platform's current key. */
async function sealFor(
  prepaid: Prepaid,
  credentials: Credentials = { paymentPassword: PAYMENT_PASSWORD },
  aadFor: Partial<Parameters<typeof sealingAad>[0]> = {},
  key?: PublicSealingKey,
) {
  const sealingKey = key ?? (await verifiedKeys(prepaid.platformId))[0]!
  const aad = sealingAad({
    serialNumber: prepaid.serialNumber,
    amountMinor: prepaid.amount.amountMinor,
    currencyCode: prepaid.amount.currencyCode,
    platformId: prepaid.platformId,
    ...aadFor,
  })
  return { keyId: sealingKey.keyId, sealed: await sealCredentials(credentials, sealingKey.publicKey, aad) }
}

async function relay(p: Person, prepaid: Prepaid, blob: { keyId: string; sealed: Uint8Array }, requestId = newRequestId(), as = terminal(p.phone)) {
  const pm = await t.client('payment-management', as)
  return unaryCall(pm, 'payThroughRelay', {
    requestId,
    deviceId: p.device,
    orderId: prepaid.order.orderId,
    platformId: prepaid.platformId,
    serialNumber: prepaid.serialNumber,
    keyId: blob.keyId,
    sealed: Buffer.from(blob.sealed),
  })
}

async function balance(platformId: string, account: string) {
  const ops = await t.client('payment-platform', OPERATOR)
  return (await unaryCall(ops, 'getAccountBalance', { platformId, account })).account!.balance!.amountMinor
}

async function transactionState(platformId: string, serialNumber: string) {
  const ops = await t.client('payment-platform', OPERATOR)
  return (await unaryCall(ops, 'getTransaction', { platformId, serialNumber })).transaction!.state
}

async function waitForState(orderId: string, state: OrderState, timeoutMs = 15_000) {
  const pm = await t.client('payment-management', OPERATOR)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const { order } = await unaryCall(pm, 'getOrder', { orderId })
    if (order!.state === state) return order!
    if (Date.now() > deadline) throw new Error(`order ${orderId} stayed ${OrderState[order!.state]}, expected ${OrderState[state]}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

function flip(bytes: Uint8Array, at: number): Buffer {
  const copy = Buffer.from(bytes)
  const index = at < 0 ? copy.length + at : at
  copy[index] = copy[index]! ^ 0x01
  return copy
}

const serviceOf = (span: ReadableSpan) => String(span.resource.attributes['service.name'])

describe('paying through the relay', () => {
  test('a terminal pays through PaymentManagement alone: the order takes effect once, the money moves once, and no password, payer account or sealed byte is kept anywhere', async () => {
    const p = await person()
    const events = subscribe(await t.client('instance-events', instance(p.device)), p.device)
    try {
      const alphaBefore = await balance('alphapay', p.alpha)
      const shopBefore = await balance('alphapay', 'SHOPALPHA0001')
      const prepaid = await prepaidOrder(p, 'gem-pack-550', 2)
      assert.equal(prepaid.platformId, 'alphapay')
      const blob = await sealFor(prepaid)
      await t.telemetry.forceFlush()
      t.spans.reset()
      const requestId = newRequestId()
      const paid = await relay(p, prepaid, blob, requestId)
      assert.ok(paid.completeTime, 'the platform completed the payment')
      assert.equal(paid.order!.orderId, prepaid.order.orderId)
      assert.deepEqual(await relay(p, prepaid, blob, requestId), paid, 'a retry with the same request id gets the first answer')

      const effective = await events.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_ORDER_EFFECTIVE)
      assert.equal(effective.subjectId, prepaid.order.orderId)
      await waitForState(prepaid.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
      const amount = prepaid.amount.amountMinor
      assert.equal(await balance('alphapay', p.alpha), alphaBefore - amount)
      assert.equal(await balance('alphapay', 'SHOPALPHA0001'), shopBefore + amount)
      assert.equal(await transactionState('alphapay', prepaid.serialNumber), TransactionState.TRANSACTION_STATE_SUCCEEDED)

      // PaymentManagement's spans carry the blob's size and nothing else of it.
      await t.telemetry.forceFlush()
      const spans = t.spans.getFinishedSpans()
      const relayed = spans.filter((s) => serviceOf(s) === 'cloudpay-payment-management' && s.name === 'cloudpay.payment.v1.PaymentManagementService/PayThroughRelay')
      assert.equal(relayed.length, 2)
      for (const span of relayed) assert.equal(span.attributes['cloudpay.sealed_bytes'], blob.sealed.length)
      const sealedAttributes = spans.filter((s) => serviceOf(s) === 'cloudpay-payment-management').flatMap((s) => Object.keys(s.attributes).filter((k) => k.includes('sealed')))
      assert.deepEqual([...new Set(sealedAttributes)], ['cloudpay.sealed_bytes'])
      for (const secret of [PAYMENT_PASSWORD, p.alpha, blob.sealed.toString('hex'), blob.sealed.toString('base64'), blob.sealed.toString('base64url')]) {
        assert.deepEqual(await findSecret(t, secret), [], `${secret.slice(0, 24)}… is kept nowhere (tables, logs, spans)`)
      }
    } finally {
      events.cancel()
    }
  })

  test('credentials sealed for another serial number, amount, currency or platform, tampered, or to an unknown key are refused, and none counts as a wrong password', async () => {
    const p = await person()
    const first = await prepaidOrder(p, 'gem-pack-100', 1)
    const second = await prepaidOrder(p, 'gem-pack-100', 2)
    const refusals: [string, { keyId: string; sealed: Uint8Array }, Status, string][] = [
      ['another serial number', await sealFor(second, undefined, { serialNumber: first.serialNumber }), Status.INVALID_ARGUMENT, 'SEALED_AAD_MISMATCH'],
      ['another amount', await sealFor(second, undefined, { amountMinor: second.amount.amountMinor + 1n }), Status.INVALID_ARGUMENT, 'SEALED_AAD_MISMATCH'],
      ['another currency', await sealFor(second, undefined, { currencyCode: 'EUR' }), Status.INVALID_ARGUMENT, 'SEALED_AAD_MISMATCH'],
      ['another platform', await sealFor(second, undefined, { platformId: 'betapay' }), Status.INVALID_ARGUMENT, 'SEALED_AAD_MISMATCH'],
    ]
    const good = await sealFor(second)
    const aadStart = 1 + 32 + 2
    refusals.push(
      ['a flipped ciphertext byte', { ...good, sealed: flip(good.sealed, -1) }, Status.INVALID_ARGUMENT, 'SEALED_UNREADABLE'],
      ['a flipped encapsulated-key byte', { ...good, sealed: flip(good.sealed, 5) }, Status.INVALID_ARGUMENT, 'SEALED_UNREADABLE'],
      ['a flipped associated-data byte', { ...good, sealed: flip(good.sealed, aadStart) }, Status.INVALID_ARGUMENT, 'SEALED_UNREADABLE'],
      ['a flipped version byte', { ...good, sealed: flip(good.sealed, 0) }, Status.INVALID_ARGUMENT, 'SEALED_UNREADABLE'],
      ['cut short', { ...good, sealed: good.sealed.subarray(0, good.sealed.length - 4) }, Status.INVALID_ARGUMENT, 'SEALED_UNREADABLE'],
      ['a key id no platform made', { ...good, keyId: 'sk-alphapay-00000000-0000-4000-8000-000000000000' }, Status.INVALID_ARGUMENT, 'SEALING_KEY_UNKNOWN'],
      ["betapay's key id", { ...good, keyId: (await verifiedKeys('betapay'))[0]!.keyId }, Status.INVALID_ARGUMENT, 'SEALING_KEY_UNKNOWN'],
      [
        "sealed to betapay's key under alphapay's key id",
        { ...(await sealFor(second, undefined, {}, (await verifiedKeys('betapay'))[0])), keyId: good.keyId },
        Status.INVALID_ARGUMENT,
        'SEALED_UNREADABLE',
      ],
    )
    for (const [what, blob, code, reason] of refusals) {
      const refused = await expectStatus(relay(p, second, blob), code)
      assert.equal(refused.reason, reason, what)
    }
    // Nothing above counted against the payer: the first wrong password leaves two attempts of three.
    const wrong = await expectStatus(relay(p, second, await sealFor(second, { paymentPassword: 'not-my-password' })), Status.PERMISSION_DENIED, '2 attempt(s) left')
    assert.equal(wrong.reason, 'PAYMENT_PASSWORD_WRONG')
    assert.equal(wrong.info?.attempts_left, '2')
    assert.equal(await transactionState('alphapay', second.serialNumber), TransactionState.TRANSACTION_STATE_PENDING)
    // The blob sealed for this very transaction pays it; the one for the first pays the first.
    await relay(p, second, good)
    await relay(p, first, await sealFor(first))
    await waitForState(second.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    await waitForState(first.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
  })

  test('a sealed blob pays once: relayed again under a new request id it is refused as replayed, and changes nothing', async () => {
    const p = await person()
    const prepaid = await prepaidOrder(p, 'gem-pack-100', 1)
    const blob = await sealFor(prepaid)
    await relay(p, prepaid, blob)
    const before = await balance('alphapay', p.alpha)
    const replayed = await expectStatus(relay(p, prepaid, blob), Status.FAILED_PRECONDITION)
    assert.equal(replayed.reason, 'SEALED_REPLAYED')
    // PaymentManagement itself (or whoever holds its certificate) replaying it to the platform: the same.
    const asPm = await t.client('payment-platform', PM)
    const direct = await expectStatus(
      unaryCall(asPm, 'paySealed', {
        requestId: newRequestId(),
        platformId: prepaid.platformId,
        serialNumber: prepaid.serialNumber,
        keyId: blob.keyId,
        sealed: blob.sealed,
        terminalId: p.phone,
      }),
      Status.FAILED_PRECONDITION,
    )
    assert.equal(direct.reason, 'SEALED_REPLAYED')
    assert.equal(await balance('alphapay', p.alpha), before)
    await waitForState(prepaid.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
  })

  test('a wrong password through the relay is counted and locks the payer as Pay does; a replayed wrong one is not counted again', async () => {
    const p = await person()
    const prepaid = await prepaidOrder(p, 'gem-pack-100', 1)
    const wrongBlob = await sealFor(prepaid, { paymentPassword: 'wrong-1' })
    const first = await expectStatus(relay(p, prepaid, wrongBlob), Status.PERMISSION_DENIED, '2 attempt(s) left')
    assert.equal(first.reason, 'PAYMENT_PASSWORD_WRONG')
    // PaymentManagement relaying the same wrong blob again cannot lock the payer: it is refused, uncounted.
    assert.equal((await expectStatus(relay(p, prepaid, wrongBlob), Status.FAILED_PRECONDITION)).reason, 'SEALED_REPLAYED')
    await expectStatus(relay(p, prepaid, await sealFor(prepaid, { paymentPassword: 'wrong-2' })), Status.PERMISSION_DENIED, '1 attempt(s) left')
    await expectStatus(relay(p, prepaid, await sealFor(prepaid, { paymentPassword: 'wrong-3' })), Status.PERMISSION_DENIED, '0 attempt(s) left')
    const locked = await expectStatus(relay(p, prepaid, await sealFor(prepaid)), Status.RESOURCE_EXHAUSTED)
    assert.equal(locked.reason, 'PAYMENT_LOCKED')
    // The same lock as Pay's: paying directly is locked too.
    const platform = await t.client('payment-platform', terminal(p.phone))
    const direct = await expectStatus(
      unaryCall(platform, 'pay', { requestId: newRequestId(), platformId: prepaid.platformId, serialNumber: prepaid.serialNumber, paymentPassword: PAYMENT_PASSWORD }),
      Status.RESOURCE_EXHAUSTED,
    )
    assert.equal(direct.reason, 'PAYMENT_LOCKED')
    assert.equal(await transactionState('alphapay', prepaid.serialNumber), TransactionState.TRANSACTION_STATE_PENDING)
  })

  test('a sealed payer account must be the transaction’s payer', async () => {
    const p = await person()
    const prepaid = await prepaidOrder(p, 'gem-pack-100', 1, p.betaBinding.bindingId)
    assert.equal(prepaid.platformId, 'betapay')
    const other = await person()
    const mismatch = await expectStatus(relay(p, prepaid, await sealFor(prepaid, { paymentPassword: PAYMENT_PASSWORD, payerAccount: other.beta })), Status.FAILED_PRECONDITION)
    assert.equal(mismatch.reason, 'SEALED_PAYER_MISMATCH')
    assert.equal(await transactionState('betapay', prepaid.serialNumber), TransactionState.TRANSACTION_STATE_PENDING)
    const before = await balance('betapay', p.beta)
    await relay(p, prepaid, await sealFor(prepaid, { paymentPassword: PAYMENT_PASSWORD, payerAccount: p.beta }))
    assert.equal(await balance('betapay', p.beta), before - prepaid.amount.amountMinor)
    assert.equal(await balance('betapay', other.beta), 100_000n)
    await waitForState(prepaid.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
    for (const secret of [p.beta, other.beta]) assert.deepEqual(await findSecret(t, secret), [], `${secret} is kept nowhere`)
  })

  test('only the order’s terminal relays, only for the order’s own prepay, and only blobs of a bounded size', async () => {
    const p = await person()
    const prepaid = await prepaidOrder(p, 'gem-pack-100', 1)
    const blob = await sealFor(prepaid)
    const stranger = await expectStatus(relay(p, prepaid, blob, newRequestId(), terminal('relay-phone-stranger')), Status.PERMISSION_DENIED)
    assert.equal(stranger.reason, 'NO_CHANNEL')
    const pm = await t.client('payment-management', terminal(p.phone))
    const elsewhere = await expectStatus(
      unaryCall(pm, 'payThroughRelay', {
        requestId: newRequestId(),
        deviceId: p.device,
        orderId: prepaid.order.orderId,
        platformId: 'betapay',
        serialNumber: prepaid.serialNumber,
        ...blob,
      }),
      Status.FAILED_PRECONDITION,
    )
    assert.equal(elsewhere.reason, 'NOT_ORDER_PREPAY')
    await t.telemetry.forceFlush()
    t.spans.reset()
    const huge = await expectStatus(relay(p, prepaid, { keyId: blob.keyId, sealed: Buffer.alloc(4097) }), Status.INVALID_ARGUMENT)
    assert.deepEqual(
      huge.violations.map((v) => v.field),
      ['sealed'],
    )
    await t.telemetry.forceFlush()
    assert.ok(!t.spans.getFinishedSpans().some((s) => s.name.endsWith('/PaySealed')), 'refused before anything was relayed')
    // At the platform, the prepay must be the relayed-for terminal's.
    const asPm = await t.client('payment-platform', PM)
    const notTheirs = await expectStatus(
      unaryCall(asPm, 'paySealed', {
        requestId: newRequestId(),
        platformId: prepaid.platformId,
        serialNumber: prepaid.serialNumber,
        keyId: blob.keyId,
        sealed: blob.sealed,
        terminalId: 'relay-phone-stranger',
      }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(notTheirs.reason, 'TERMINAL_NOT_ALLOWED')
    await relay(p, prepaid, blob)
    await waitForState(prepaid.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
  })
})

describe('sealing keys', () => {
  test('keys rotate: a blob sealed to the previous key opens within the grace period and is refused after it', async () => {
    const keys = t.mesh.database.db.withSchema('payment_platform')
    /** As if the key had been made `ms` ago (the platform reads its clock against the stored time). */
    const madeAgo = (keyId: string, ms: number) =>
      keys
        .updateTable('sealing_keys')
        .set({ created_at: new Date(Date.now() - ms) })
        .where('key_id', '=', keyId)
        .execute()
    const p = await person()
    const first = await prepaidOrder(p, 'gem-pack-100', 1)
    const [previous] = await verifiedKeys('alphapay')
    const sealedBefore = await sealFor(first, undefined, {}, previous)

    await madeAgo(previous!.keyId, ROTATION_MS + 60_000)
    const rotated = await verifiedKeys('alphapay')
    assert.notEqual(rotated[0]!.keyId, previous!.keyId, 'a new current key')
    assert.ok(
      rotated.some((k) => k.keyId === previous!.keyId),
      'the previous key is still published',
    )
    await relay(p, first, sealedBefore)
    await waitForState(first.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)

    const second = await prepaidOrder(p, 'gem-pack-100', 1)
    const sealedLate = await sealFor(second, undefined, {}, previous)
    await madeAgo(previous!.keyId, ROTATION_MS + GRACE_MS + 60_000)
    assert.ok(!(await verifiedKeys('alphapay')).some((k) => k.keyId === previous!.keyId), 'no longer published')
    const expired = await expectStatus(relay(p, second, sealedLate), Status.FAILED_PRECONDITION)
    assert.equal(expired.reason, 'SEALING_KEY_EXPIRED')
    await relay(p, second, await sealFor(second))
    await waitForState(second.order.orderId, OrderState.ORDER_STATE_EFFECTIVE)
  })

  test('the terminal seals only to keys the payment platform vouched for: another certificate, another identity, another CA, a CA certificate or an altered key are refused', async () => {
    const published = await fetchKeys('alphapay', terminal('relay-verifier'))
    const check = (response: GetSealingKeysResponse, platformId = 'alphapay') => verifySealingKeys(response, { platformId, caCertificates: meshCa })
    assert.ok(check(published).length >= 1)
    for (const caller of [PM, OPERATOR]) assert.ok(check(await fetchKeys('alphapay', caller)).length >= 1, `${caller.role} may read the keys too`)

    const identity = async (paths: { certFile: string; keyFile: string }) => ({
      key: createPrivateKey(await readFile(paths.keyFile, 'utf8')),
      der: new X509Certificate(await readFile(paths.certFile)).raw,
    })
    const signedBy = (who: { key: ReturnType<typeof createPrivateKey>; der: Buffer }, chain = [who.der]): GetSealingKeysResponse => ({
      ...published,
      keys: published.keys.map((k) => ({ ...k, signature: signSealingKey(who.key, 'alphapay', { keyId: k.keyId, publicKey: k.publicKey, notAfter: k.notAfter! }) })),
      certificateChain: chain,
    })
    const otherHome = await mkdtemp(join(tmpdir(), 'cloudpay-other-ca-'))
    try {
      const genuine = published.certificateChain[0]!
      const impostor = await identity(await issueSeparateDevCertificate(t.config.home, PLATFORM, 'impostor'))
      const refused: [string, GetSealingKeysResponse, RegExp, string?][] = [
        ['signed by another certificate’s key', signedBy(impostor, [genuine]), /not made by the certificate/],
        ['the genuine signatures under another certificate', { ...published, certificateChain: [impostor.der] }, /not made by the certificate/],
        ['signed by payment-management', signedBy(await identity(await certificateFiles(t.config, PM))), /not the payment platform's/],
        ['signed by a terminal', signedBy(await identity(await certificateFiles(t.config, terminal('relay-forger')))), /not the payment platform's/],
        ['a payment-platform certificate of another CA', signedBy(await identity(await ensureDevCertificate(otherHome, PLATFORM))), /does not chain to the mesh CA/],
        ['a payment-platform CA certificate', signedBy(await identity(await issueSeparateDevCertificate(t.config.home, PLATFORM, 'as-ca', { asCa: true }))), /not a leaf/],
        ['a swapped public key', { ...published, keys: [{ ...published.keys[0]!, publicKey: (await fetchKeys('betapay')).keys[0]!.publicKey }] }, /not made by the certificate/],
        [
          'a later not_after',
          { ...published, keys: [{ ...published.keys[0]!, notAfter: new Date(published.keys[0]!.notAfter!.getTime() + 86_400_000) }] },
          /not made by the certificate/,
        ],
        ["alphapay's keys taken for betapay's", published, /another platform/, 'betapay'],
        ['no certificate', { ...published, certificateChain: [] }, /certificate chain/],
      ]
      for (const [what, response, problem, platformId] of refused) {
        assert.throws(
          () => check(response, platformId),
          (error: unknown) => error instanceof SealingKeysRefused && problem.test(error.message),
          what,
        )
      }
      // Keys past their not_after are left out; when none is left, nothing may be sealed to.
      const after = new Date(Math.max(...published.keys.map((k) => k.notAfter!.getTime())) + 1)
      assert.throws(() => verifySealingKeys(published, { platformId: 'alphapay', caCertificates: meshCa, now: after }), /no key is still accepted/)
    } finally {
      await rm(otherHome, { recursive: true, force: true })
    }
  })
})
