// Offline payment codes sealed to the payee (docs/design.md) over real gRPC, mTLS and a real
// database: a terminal provisions a credential online (the allowance reserved at once), makes
// codes with no network, only the payee they were made for can open and redeem them, and every
// attack in issue 13 is refused with its status and reason without moving any money.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { after, before, describe, test } from 'node:test'
import { status as Status } from '@grpc/grpc-js'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OfflineCredentialState, OfflinePaymentCode, OfflinePaymentCodeBody } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { terminal } from '../../cli/demo/steps.ts'
import {
  generateOfflineCode,
  generatePayeeKeyPair,
  OfflineCodeRefused,
  openPaymentCode,
  type PayeeKeyPair,
  type StoredCredential,
  storedCredential,
} from '../../sdk/offline-code.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { derivedRequestId } from '../../services/runtime/idempotency.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { sealPaymentCode, verifyPayeeCode } from '../../services/runtime/offline-codes.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'
import { followTerminal } from '../helpers/subscriber.ts'

const PLATFORM = 'alphapay'
const PASSWORD = 'offline-secret-5151'
const ROTATION_MS = 3_600_000
const GRACE_MS = 600_000
const WINDOW = 4
const USD = (amountMinor: bigint) => ({ currencyCode: 'USD', amountMinor })

/** Generation in a child process with every way out cut (test/helpers/offline-generate.ts). */
async function generateWithoutNetwork(credential: StoredCredential, payeeCode: string, amount: { currencyCode: string; amountMinor: bigint }): Promise<string> {
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64')
  const input = JSON.stringify({
    credential: {
      ...credential,
      secret: b64(credential.secret),
      perCodeCapMinor: String(credential.perCodeCapMinor),
      nextCounter: String(credential.nextCounter),
      certificateChain: credential.certificateChain.map(b64),
    },
    payeeCode,
    currencyCode: amount.currencyCode,
    amountMinor: String(amount.amountMinor),
    meshCa: meshCa.toString(),
  })
  const child = execFile(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../helpers/offline-generate.ts', import.meta.url))])
  child.stdin!.end(input)
  let out = ''
  let err = ''
  child.stdout!.on('data', (chunk) => (out += chunk))
  child.stderr!.on('data', (chunk) => (err += chunk))
  const [code] = (await once(child, 'close')) as [number]
  assert.equal(code, 0, err)
  return out
}

let t: TestMesh
let meshCa: Buffer
/** Two merchants, each a payee held by its counter. */
let shop: Merchant
let other: Merchant
before(async () => {
  t = await startTestMesh({
    env: {
      CLOUDPAY_RETRY_BASE_MS: '100',
      CLOUDPAY_RETRY_MAX_MS: '500',
      CLOUDPAY_PAYMENT_MAX_FAILURES: '3',
      CLOUDPAY_PAYEE_KEY_ROTATION_MS: String(ROTATION_MS),
      CLOUDPAY_PAYEE_KEY_GRACE_MS: String(GRACE_MS),
      CLOUDPAY_OFFLINE_COUNTER_WINDOW: String(WINDOW),
    },
  })
  meshCa = await readFile((await certificateFiles(t.config, OPERATOR)).caFile)
  shop = await merchant('one')
  other = await merchant('two')
})
after(async () => t?.stop())

const platformAs = (identity: Identity) => t.client('payment-platform', identity)

/** A merchant with a collection account, registered as a payee held by its counter, with a published key. */
async function merchant(name: string) {
  const ops = await platformAs(OPERATOR)
  const collectionAccount = `SHOP${name.toUpperCase()}01`
  await unaryCall(ops, 'createMerchantAccount', { requestId: newRequestId(), platformId: PLATFORM, merchantId: name, collectionAccount, currencyCode: 'USD' })
  const counter = terminal(`counter-${name}`)
  const payeeId = `payee-${name}`
  await unaryCall(ops, 'registerPayee', { requestId: newRequestId(), platformId: PLATFORM, payeeId, collectionAccount, holder: `terminal/${counter.id}` })
  const keys: PayeeKeyPair[] = []
  const payee = {
    name,
    payeeId,
    counter,
    collectionAccount,
    keys,
    async publishKey() {
      const pair = await generatePayeeKeyPair()
      const { key } = await unaryCall(await platformAs(counter), 'publishPayeeKey', { requestId: newRequestId(), platformId: PLATFORM, payeeId, publicKey: pair.publicKey })
      keys.unshift({ keyId: key!.keyId, privateKey: pair.privateKey })
      return key!
    },
    async code() {
      return (await unaryCall(await platformAs(counter), 'getPayeeCode', { platformId: PLATFORM, payeeId })).code
    },
    open(text: string) {
      return openPaymentCode(text, { platformId: PLATFORM, payeeId, keys })
    },
    async redeem(opened: Uint8Array, amountMinor: bigint, requestId = newRequestId()) {
      return (await unaryCall(await platformAs(counter), 'redeemOfflineCode', { requestId, platformId: PLATFORM, payeeId, code: Buffer.from(opened), amount: USD(amountMinor) }))
        .redemption!
    },
  }
  await payee.publishKey()
  return payee
}
type Merchant = Awaited<ReturnType<typeof merchant>>

let payers = 0
/** A payer account and its terminal, with a provisioned credential. */
async function payer(options: { balance?: bigint; allowance?: bigint; capMinor?: bigint } = {}) {
  const n = ++payers
  const payerAccount = `OFFPAYER${n}00`
  const phone = terminal(`offline-phone-${n}`)
  await unaryCall(await platformAs(OPERATOR), 'createPayerAccount', {
    requestId: newRequestId(),
    platformId: PLATFORM,
    payerAccount,
    paymentPassword: PASSWORD,
    openingBalance: USD(options.balance ?? 10_000n),
  })
  const reply = await unaryCall(await platformAs(phone), 'provisionOfflineCredential', {
    requestId: newRequestId(),
    platformId: PLATFORM,
    payerAccount,
    paymentPassword: PASSWORD,
    allowance: USD(options.allowance ?? 3_000n),
    perCodeCapMinor: options.capMinor ?? 1_000n,
    expireTime: undefined,
  })
  return { n, payerAccount, phone, reply, credential: storedCredential(reply) }
}
type Payer = Awaited<ReturnType<typeof payer>>

/** Makes `count` codes for `to` in a row, advancing the stored credential as a terminal does. */
async function codes(p: { credential: StoredCredential }, to: Merchant, amounts: bigint[]) {
  const made: string[] = []
  const payeeCode = await to.code()
  for (const amountMinor of amounts) {
    const generated = await generateOfflineCode(p.credential, payeeCode, USD(amountMinor), { caCertificates: meshCa })
    p.credential = generated.credential
    made.push(generated.text)
  }
  return made
}

async function balance(account: string): Promise<bigint> {
  const ops = await platformAs(OPERATOR)
  try {
    return (await unaryCall(ops, 'getAccountBalance', { platformId: PLATFORM, account })).account!.balance!.amountMinor
  } catch (error) {
    // The offline reserve is opened with the first credential.
    if (account === 'OFFLINERESERVEUSD' && (error as { code?: Status }).code === Status.NOT_FOUND) return 0n
    throw error
  }
}

/** The status and ErrorInfo reason a call was refused with. */
async function refusal(call: Promise<unknown>): Promise<{ code: Status; reason?: string }> {
  try {
    await call
  } catch (error) {
    const { error: caught, reason } = await expectStatus(Promise.reject(error), (error as { code: Status }).code)
    return { code: caught.code, reason }
  }
  assert.fail('the call succeeded')
}
async function balances(p: Payer, ...merchants: Merchant[]): Promise<Record<string, bigint>> {
  const collected: Record<string, bigint> = {}
  for (const m of merchants) collected[m.name] = await balance(m.collectionAccount)
  return { payer: await balance(p.payerAccount), reserve: await balance('OFFLINERESERVEUSD'), ...collected }
}
/** The sum of every balance on the platform: zero whatever happened (issuance is minus everything else). */
async function platformTotal(): Promise<bigint> {
  const rows = await t.mesh.database.db
    .withSchema('payment_platform')
    .selectFrom('accounts' as never)
    .select((eb: any) => eb.fn.sum('balance_minor').as('total'))
    .where('platform_id' as never, '=', PLATFORM as never)
    .execute()
  return BigInt((rows[0] as { total: string }).total)
}
const listing = async (p: Payer) =>
  unaryCall(await platformAs(p.phone), 'listOfflineRedemptions', { platformId: PLATFORM, credentialId: p.credential.credentialId, pageSize: 0, pageToken: '' })

describe('provisioning, generation offline, redemption', () => {
  test('the allowance is reserved at once; a code made with no network redeems at its payee only, once; the payer lists it and is pushed', async () => {
    const totalBefore = await platformTotal()
    const reserveBefore = await balance('OFFLINERESERVEUSD')
    const p = await payer({ balance: 10_000n, allowance: 3_000n })
    const provisioned = await balances(p, shop)
    assert.equal(provisioned.payer, 7_000n, 'the allowance left the payer at once')
    assert.equal(provisioned.reserve, reserveBefore + 3_000n, 'and sits in the offline reserve')
    assert.equal(p.reply.credential!.state, OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_ACTIVE)
    assert.equal(p.reply.credentialSecret.length, 32)

    // The payer's terminal follows its own stream (enrolled in a cloud account) to be told of redemptions.
    const accounts = await t.client('account-management', OPERATOR)
    await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: `offline${p.n}`, password: `offline-${p.n}-login` })
    await unaryCall(await t.client('account-management', p.phone), 'enrollTerminal', {
      requestId: newRequestId(),
      accountId: `offline${p.n}`,
      password: `offline-${p.n}-login`,
      displayName: 'phone',
    })
    const stream = followTerminal(await t.client('instance-events', p.phone))
    try {
      // Offline: the payee code read from the counter; the code made in another process that has
      // no client of any service and whose sockets, DNS and HTTP/2 all throw.
      const payeeCode = await shop.code()
      const generated = { text: await generateWithoutNetwork(p.credential, payeeCode, USD(800n)) }
      assert.match(generated.text, /^cppay1\.[A-Za-z0-9_-]+$/)
      const inProcess = await generateOfflineCode(p.credential, payeeCode, USD(800n), { caCertificates: meshCa })
      assert.equal(inProcess.counter, 1n)
      assert.equal(inProcess.credential.nextCounter, 2n, 'the stored counter advances with every code')

      await assert.rejects(other.open(generated.text), OfflineCodeRefused, 'another payee cannot open it')
      const opened = await shop.open(generated.text)
      const redemption = await shop.redeem(opened, 750n)
      assert.equal(redemption.amount!.amountMinor, 750n)
      assert.equal(redemption.counter, 1n)

      const after = await balances(p, shop)
      assert.deepEqual(after, { payer: 7_000n, reserve: provisioned.reserve - 750n, one: provisioned.one! + 750n })
      assert.equal(await platformTotal(), totalBefore, 'money is constant')

      const listed = await listing(p)
      assert.equal(listed.credential!.remaining!.amountMinor, 2_250n)
      assert.deepEqual(
        listed.redemptions.map((r) => [r.redemptionId, r.payeeId, r.amount!.amountMinor]),
        [[redemption.redemptionId, shop.payeeId, 750n]],
      )
      const pushed = await stream.waitForEvent((e) => e.kind === EventKind.EVENT_KIND_OFFLINE_CODE_REDEEMED)
      assert.equal(pushed.subjectId, redemption.redemptionId, 'the push names the redemption, nothing else')
    } finally {
      stream.cancel()
    }
  })

  test('the terminal refuses a payee code the platform did not sign, of another platform, or altered, before sealing anything', async () => {
    const p = await payer()
    const good = await shop.code()
    const trust = { platformId: PLATFORM, certificateChain: p.credential.certificateChain, caCertificates: meshCa }
    assert.equal(verifyPayeeCode(good, trust).payeeId, shop.payeeId)
    assert.throws(() => verifyPayeeCode(good, { ...trust, platformId: 'betapay' }), OfflineCodeRefused)
    const raw = Buffer.from(good.slice('cppayee1.'.length), 'base64url')
    for (const at of [4, 20, raw.length - 30, raw.length - 2]) {
      const altered = Buffer.from(raw)
      altered[at] = altered[at]! ^ 0x01
      assert.throws(() => verifyPayeeCode(`cppayee1.${altered.toString('base64url')}`, trust), OfflineCodeRefused, `a byte altered at ${at}`)
    }
    // A chain that is not the platform's (here: none of the mesh CA's) is refused too.
    assert.throws(() => verifyPayeeCode(good, { ...trust, caCertificates: Buffer.from('no CA') }), OfflineCodeRefused)
  })
})

describe('attacks, each refused without moving money', () => {
  test('a leaked code: another payee cannot open it, and the plaintext forwarded to it fails the payee binding', async () => {
    const p = await payer()
    const [text] = await codes(p, shop, [500n])
    const before = await balances(p, shop, other)
    await assert.rejects(other.open(text!), OfflineCodeRefused)
    const opened = await shop.open(text!)
    const forwarded = await expectStatus(other.redeem(opened, 500n), Status.PERMISSION_DENIED)
    assert.equal(forwarded.reason, 'OFFLINE_PAYEE_MISMATCH')
    // Nor can the other counter redeem in the first payee's name.
    const asOther = await platformAs(other.counter)
    const posing = await expectStatus(
      unaryCall(asOther, 'redeemOfflineCode', { requestId: newRequestId(), platformId: PLATFORM, payeeId: shop.payeeId, code: Buffer.from(opened), amount: USD(500n) }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(posing.reason, 'PAYEE_NOT_HELD')
    assert.deepEqual(await balances(p, shop, other), before)
    // The code is still good for its own payee.
    await shop.redeem(opened, 500n)
  })

  test('a replayed code is refused; a retry under the same request id gets the first answer and charges once', async () => {
    const p = await payer()
    const [text] = await codes(p, shop, [400n])
    const opened = await shop.open(text!)
    const requestId = newRequestId()
    const first = await shop.redeem(opened, 400n, requestId)
    const afterFirst = await balances(p, shop)
    assert.deepEqual(await shop.redeem(opened, 400n, requestId), first)
    const replayed = await expectStatus(shop.redeem(opened, 400n), Status.FAILED_PRECONDITION)
    assert.equal(replayed.reason, 'OFFLINE_CODE_REPLAYED')
    assert.deepEqual(await balances(p, shop), afterFirst)
  })

  test('counters: out of order within the window redeem; each once; one at or below highest - window is a rewound counter', async () => {
    const p = await payer({ allowance: 5_000n })
    const made = await codes(p, shop, [100n, 100n, 100n, 100n, 100n, 100n])
    const open = (i: number) => shop.open(made[i - 1]!)
    await shop.redeem(await open(6), 100n)
    await shop.redeem(await open(3), 100n) // 3 > 6 - 4
    const before = await balances(p, shop)
    const rewound = await expectStatus(shop.redeem(await open(2), 100n), Status.FAILED_PRECONDITION)
    assert.equal(rewound.reason, 'OFFLINE_COUNTER_REWOUND')
    const again = await expectStatus(shop.redeem(await open(3), 100n), Status.FAILED_PRECONDITION)
    assert.equal(again.reason, 'OFFLINE_CODE_REPLAYED')
    assert.deepEqual(await balances(p, shop), before)
    await shop.redeem(await open(5), 100n)
    await shop.redeem(await open(4), 100n)
    assert.deepEqual(
      (await listing(p)).redemptions.map((r) => r.counter),
      [6n, 5n, 4n, 3n],
    )
  })

  test('amounts: above the cap, above the code, above what is left of the allowance, or in another currency', async () => {
    const p = await payer({ allowance: 1_000n, capMinor: 600n })
    // A code above the cap: the SDK will not make one, so make it by hand with the real secret.
    await assert.rejects(generateOfflineCode(p.credential, await shop.code(), USD(601n), { caCertificates: meshCa }), OfflineCodeRefused)
    const payee = verifyPayeeCode(await shop.code(), { platformId: PLATFORM, certificateChain: p.credential.certificateChain, caCertificates: meshCa })
    const byHand = (counter: bigint, amount: { currencyCode: string; amountMinor: bigint }) =>
      sealPaymentCode(
        { credentialId: p.credential.credentialId, counter, amount, platformId: PLATFORM, payeeId: shop.payeeId, payeeKeyId: payee.key.keyId, generateTime: new Date() },
        p.credential.secret,
        payee,
      )
    const before = await balances(p, shop)
    const aboveCap = await expectStatus(shop.redeem(await shop.open(await byHand(10n, USD(601n))), 601n), Status.FAILED_PRECONDITION)
    assert.equal(aboveCap.reason, 'OFFLINE_CAP_EXCEEDED')
    const euro = await expectStatus(shop.redeem(await shop.open(await byHand(11n, { currencyCode: 'EUR', amountMinor: 100n })), 100n), Status.FAILED_PRECONDITION)
    assert.equal(euro.reason, 'CURRENCY_MISMATCH')
    const [first, second] = await codes(p, shop, [600n, 600n])
    const aboveCode = await expectStatus(shop.redeem(await shop.open(first!), 601n), Status.FAILED_PRECONDITION)
    assert.equal(aboveCode.reason, 'OFFLINE_AMOUNT_ABOVE_CODE')
    assert.deepEqual(await balances(p, shop), before)
    await shop.redeem(await shop.open(first!), 600n)
    const afterFirst = await balances(p, shop)
    const aboveAllowance = await expectStatus(shop.redeem(await shop.open(second!), 600n), Status.FAILED_PRECONDITION)
    assert.equal(aboveAllowance.reason, 'OFFLINE_ALLOWANCE_EXCEEDED')
    assert.deepEqual(await balances(p, shop), afterFirst)
    await shop.redeem(await shop.open(second!), 400n) // what is left
    assert.equal((await listing(p)).credential!.remaining!.amountMinor, 0n)
  })

  test("time: a code made outside the credential's window, or ahead of the platform's clock beyond the skew, is refused", async () => {
    const p = await payer()
    const payee = verifyPayeeCode(await shop.code(), { platformId: PLATFORM, certificateChain: p.credential.certificateChain, caCertificates: meshCa })
    const madeAt = (counter: bigint, generateTime: Date) =>
      sealPaymentCode(
        { credentialId: p.credential.credentialId, counter, amount: USD(100n), platformId: PLATFORM, payeeId: shop.payeeId, payeeKeyId: payee.key.keyId, generateTime },
        p.credential.secret,
        payee,
      )
    const skew = t.config.payment.offline.clockSkewMs
    const before = await balances(p, shop)
    for (const [counter, at] of [
      [1n, new Date(Date.now() + skew + 60_000)],
      [2n, new Date(p.credential.notBefore.getTime() - skew - 60_000)],
      [3n, new Date(p.credential.notAfter.getTime() + 1_000)],
    ] as const) {
      const refused = await expectStatus(shop.redeem(await shop.open(await madeAt(counter, at)), 100n), Status.FAILED_PRECONDITION)
      assert.equal(refused.reason, 'OFFLINE_CODE_OUTSIDE_WINDOW', at.toISOString())
    }
    assert.deepEqual(await balances(p, shop), before)
    // A phone clock a little ahead is allowed for.
    await shop.redeem(await shop.open(await madeAt(4n, new Date(Date.now() + skew / 2))), 100n)
  })

  test('any tampered byte: of the sealed code, the payee cannot open it; of the opened code, the platform refuses it', async () => {
    const p = await payer()
    const [text] = await codes(p, shop, [300n])
    const sealed = Buffer.from(text!.slice('cppay1.'.length), 'base64url')
    for (let at = 0; at < sealed.length; at += 7) {
      const altered = Buffer.from(sealed)
      altered[at] = altered[at]! ^ 0x40
      await assert.rejects(shop.open(`cppay1.${altered.toString('base64url')}`), OfflineCodeRefused, `sealed byte ${at}`)
    }
    const opened = Buffer.from(await shop.open(text!))
    const before = await balances(p, shop)
    for (let at = 0; at < opened.length; at += 3) {
      const altered = Buffer.from(opened)
      altered[at] = altered[at]! ^ 0x01
      const refused = await refusal(shop.redeem(altered, 300n))
      // A flipped byte inside the credential id names another (unknown) credential: NOT_FOUND.
      const expected = { [Status.INVALID_ARGUMENT]: ['OFFLINE_CODE_FORGED', 'OFFLINE_CODE_UNREADABLE'], [Status.NOT_FOUND]: ['OFFLINE_CREDENTIAL_NOT_FOUND'] }
      assert.ok(expected[refused.code as keyof typeof expected]?.includes(refused.reason!), `opened byte ${at}: ${Status[refused.code]} ${refused.reason}`)
    }
    // A body with a valid shape but another amount: the MAC is over the body's exact bytes.
    const code = OfflinePaymentCode.decode(opened)
    const body = OfflinePaymentCodeBody.decode(code.body)
    const richer = OfflinePaymentCode.encode({ body: Buffer.from(OfflinePaymentCodeBody.encode({ ...body, amount: USD(999n) }).finish()), mac: code.mac }).finish()
    assert.equal((await expectStatus(shop.redeem(richer, 999n), Status.INVALID_ARGUMENT)).reason, 'OFFLINE_CODE_FORGED')
    assert.deepEqual(await balances(p, shop), before)
    await shop.redeem(opened, 300n)
  })

  test('revoked and expired credentials redeem nothing; the rest of the reserve goes back to the payer, money constant', async () => {
    const totalBefore = await platformTotal()
    const p = await payer({ balance: 10_000n, allowance: 3_000n })
    const [spent, leftOver] = await codes(p, shop, [1_000n, 500n])
    await shop.redeem(await shop.open(spent!), 1_000n)
    const revoked = await unaryCall(await platformAs(p.phone), 'revokeOfflineCredential', {
      requestId: newRequestId(),
      platformId: PLATFORM,
      credentialId: p.credential.credentialId,
    })
    assert.equal(revoked.returned!.amountMinor, 2_000n)
    assert.equal(revoked.credential!.state, OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_REVOKED)
    assert.equal(await balance(p.payerAccount), 9_000n)
    const before = await balances(p, shop)
    const refused = await expectStatus(shop.redeem(await shop.open(leftOver!), 500n), Status.FAILED_PRECONDITION)
    assert.equal(refused.reason, 'OFFLINE_CREDENTIAL_REVOKED')
    assert.deepEqual(await balances(p, shop), before)

    // Another terminal may not revoke or list someone else's credential.
    const stranger = await platformAs(terminal('offline-stranger'))
    const notYours = await expectStatus(
      unaryCall(stranger, 'revokeOfflineCredential', { requestId: newRequestId(), platformId: PLATFORM, credentialId: p.credential.credentialId }),
      Status.PERMISSION_DENIED,
    )
    assert.equal(notYours.reason, 'OFFLINE_CREDENTIAL_NOT_YOURS')

    const q = await payer({ balance: 10_000n, allowance: 2_000n })
    const [late] = await codes(q, shop, [700n])
    // As if its window had passed (the platform reads its clock against the stored time).
    await t.mesh.database.db
      .withSchema('payment_platform')
      .updateTable('offline_credentials' as never)
      .set({ not_after: new Date(Date.now() - 1_000) } as never)
      .where('credential_id' as never, '=', q.credential.credentialId as never)
      .execute()
    const expired = await expectStatus(shop.redeem(await shop.open(late!), 700n), Status.FAILED_PRECONDITION)
    assert.equal(expired.reason, 'OFFLINE_CREDENTIAL_EXPIRED')
    assert.equal(await balance(q.payerAccount), 8_000n, 'not returned before the sweep')
    const platform = t.mesh.services.find((s) => s.name === 'payment-platform')!
    const counts = await platform.retention!.runNow()
    assert.ok((counts['offline_credentials_expired'] ?? 0) >= 1)
    assert.equal(await balance(q.payerAccount), 10_000n, 'the sweep gave the whole allowance back')
    assert.equal((await listing(q)).credential!.state, OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_EXPIRED)
    assert.equal(await platformTotal(), totalBefore, 'money constant across provisioning, redemption, revocation and expiry')
  })

  test('a code for a payee key rotated out redeems for the grace period only', async () => {
    const p = await payer()
    const rotating = await merchant('rot')
    const keys = t.mesh.database.db.withSchema('payment_platform')
    const madeAgo = (keyId: string, ms: number) =>
      keys
        .updateTable('payee_keys' as never)
        .set({ created_at: new Date(Date.now() - ms) } as never)
        .where('key_id' as never, '=', keyId as never)
        .execute()
    const [inGrace, pastGrace] = await codes(p, rotating, [100n, 100n])
    const oldKeyId = rotating.keys[0]!.keyId
    await madeAgo(oldKeyId, ROTATION_MS + 60_000)
    await rotating.publishKey()
    assert.notEqual(verifyPayeeCode(await rotating.code(), { platformId: PLATFORM, certificateChain: p.credential.certificateChain, caCertificates: meshCa }).key.keyId, oldKeyId)
    await rotating.redeem(await rotating.open(inGrace!), 100n)
    await madeAgo(oldKeyId, ROTATION_MS + GRACE_MS + 60_000)
    const before = await balances(p, rotating)
    const refused = await expectStatus(rotating.redeem(await rotating.open(pastGrace!), 100n), Status.FAILED_PRECONDITION)
    assert.equal(refused.reason, 'PAYEE_KEY_EXPIRED')
    assert.deepEqual(await balances(p, rotating), before)
    // A code for the new key redeems.
    const [fresh] = await codes(p, rotating, [100n])
    await rotating.redeem(await rotating.open(fresh!), 100n)
  })

  test('the same code redeemed twice at once: exactly one succeeds', async () => {
    const p = await payer()
    const [text] = await codes(p, shop, [900n])
    const opened = await shop.open(text!)
    const before = await balances(p, shop)
    const outcomes = await Promise.allSettled([shop.redeem(opened, 900n), shop.redeem(opened, 900n), shop.redeem(opened, 900n)])
    assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1)
    for (const o of outcomes.filter((o) => o.status === 'rejected')) {
      assert.equal((o as PromiseRejectedResult).reason.code, Status.FAILED_PRECONDITION)
    }
    const after = await balances(p, shop)
    assert.equal(after.one, before.one! + 900n)
    assert.equal(after.reserve, before.reserve! - 900n)
  })
})

describe('the payment password at provisioning', () => {
  test('a wrong one is counted and locks the payer as Pay does; nothing is reserved', async () => {
    const payerAccount = 'OFFLOCKED0001'
    await unaryCall(await platformAs(OPERATOR), 'createPayerAccount', {
      requestId: newRequestId(),
      platformId: PLATFORM,
      payerAccount,
      paymentPassword: PASSWORD,
      openingBalance: USD(5_000n),
    })
    const phone = await platformAs(terminal('offline-guesser'))
    const provision = (paymentPassword: string) =>
      unaryCall(phone, 'provisionOfflineCredential', {
        requestId: newRequestId(),
        platformId: PLATFORM,
        payerAccount,
        paymentPassword,
        allowance: USD(1_000n),
        perCodeCapMinor: 100n,
        expireTime: undefined,
      })
    const first = await expectStatus(provision('wrong-guess-1'), Status.PERMISSION_DENIED)
    assert.equal(first.reason, 'PAYMENT_PASSWORD_WRONG')
    assert.equal(first.info?.attempts_left, '2')
    await expectStatus(provision('wrong-guess-2'), Status.PERMISSION_DENIED)
    await expectStatus(provision('wrong-guess-3'), Status.PERMISSION_DENIED)
    const locked = await expectStatus(provision(PASSWORD), Status.RESOURCE_EXHAUSTED)
    assert.equal(locked.reason, 'PAYMENT_LOCKED')
    assert.equal(await balance(payerAccount), 5_000n)
  })

  test('the credential secret and the payment password are in no table, log or span', async () => {
    const p = await payer()
    const [text] = await codes(p, shop, [200n])
    await shop.redeem(await shop.open(text!), 200n)
    const secret = Buffer.from(p.credential.secret)
    for (const form of [PASSWORD, secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')]) {
      assert.deepEqual(await findSecret(t, form), [], `found ${form.slice(0, 6)}…`)
    }
  })
})

describe('a terminal removed from its cloud account (rental-boundary.ts)', () => {
  /** A cloud account with `p`'s phone enrolled in it. */
  async function enrol(p: Payer, accountId: string) {
    const password = `${accountId}-login-password`
    await unaryCall(await t.client('account-management', OPERATOR), 'registerCloudAccount', { requestId: newRequestId(), accountId, password })
    return (await unaryCall(await t.client('account-management', p.phone), 'enrollTerminal', { requestId: newRequestId(), accountId, password, displayName: 'phone' })).terminal!
  }

  test('its offline credentials end at the removal: nothing more redeems, the rest goes back to the payer once, and enrolled elsewhere it sees none of them', async () => {
    const totalBefore = await platformTotal()
    const p = await payer({ balance: 10_000n, allowance: 3_000n })
    const enrolment = await enrol(p, `offmove${p.n}a`)
    const [spent, kept] = await codes(p, shop, [500n, 700n])
    await shop.redeem(await shop.open(spent!), 500n)
    assert.equal((await listing(p)).redemptions.length, 1, 'while enrolled the phone lists its redemptions')

    const removed = await unaryCall(await t.client('account-management', OPERATOR), 'removeTerminal', { requestId: newRequestId(), terminalId: p.phone.id })
    assert.equal(removed.grantsEnded, true, 'the platform acknowledged the end of the enrolment')
    // The code the phone made before it was removed spends nothing any more.
    assert.deepEqual(await refusal(shop.redeem(await shop.open(kept!), 700n)), { code: Status.FAILED_PRECONDITION, reason: 'OFFLINE_CREDENTIAL_REVOKED' })
    const after = await balances(p, shop)
    assert.equal(after.payer, 9_500n, 'what was left of the allowance (2,500) went back to the payer')
    assert.equal(await platformTotal(), totalBefore, 'money constant')

    // The hand-off redelivered (AccountManagement's outbox retries until acknowledged): its first answer, nothing returned twice...
    const handOff = await platformAs({ role: 'service', id: 'account-management' })
    const deliveryId = derivedRequestId('terminal-removed', enrolment.enrollmentId, 'terminal-offline-credentials-end')
    const delivered = await t.mesh.database.db
      .withSchema('account_management')
      .selectFrom('outbox' as never)
      .select(['payload' as never, 'delivered_at' as never])
      .where('delivery_id' as never, '=', deliveryId as never)
      .executeTakeFirstOrThrow()
    const { payload, delivered_at } = delivered as { payload: { removed_at: string }; delivered_at: Date | null }
    assert.ok(delivered_at, 'acknowledged')
    const redelivery = { requestId: deliveryId, terminalId: p.phone.id, provisionedBefore: new Date(payload.removed_at) }
    assert.deepEqual((await unaryCall(handOff, 'endTerminalCredentials', redelivery)).credentialIds, [p.credential.credentialId], 'the delivery ended the credential')
    assert.equal(await balance(p.payerAccount), 9_500n)
    // ...and under another request id neither.
    const again = await unaryCall(handOff, 'endTerminalCredentials', { requestId: newRequestId(), terminalId: p.phone.id, provisionedBefore: new Date() })
    assert.deepEqual(again.credentialIds, [], 'ended already')
    assert.equal(await balance(p.payerAccount), 9_500n)

    // Enrolled in another account, the phone sees none of the credentials of the one it left.
    await enrol(p, `offmove${p.n}b`)
    for (const attempt of [
      () => listing(p),
      async () => unaryCall(await platformAs(p.phone), 'revokeOfflineCredential', { requestId: newRequestId(), platformId: PLATFORM, credentialId: p.credential.credentialId }),
    ]) {
      assert.deepEqual(await refusal(attempt()), { code: Status.PERMISSION_DENIED, reason: 'OFFLINE_CREDENTIAL_NOT_YOURS' }, 'as for another terminal credential')
    }
    // What it provisions now is its own; a late redelivery of the removal leaves it alone.
    const fresh = await unaryCall(await platformAs(p.phone), 'provisionOfflineCredential', {
      requestId: newRequestId(),
      platformId: PLATFORM,
      payerAccount: p.payerAccount,
      paymentPassword: PASSWORD,
      allowance: USD(1_000n),
      perCodeCapMinor: 500n,
      expireTime: undefined,
    })
    const late = await unaryCall(handOff, 'endTerminalCredentials', { requestId: newRequestId(), terminalId: p.phone.id, provisionedBefore: fresh.credential!.notBefore! })
    assert.deepEqual(late.credentialIds, [])
    const mine = { ...p, credential: storedCredential(fresh) }
    assert.equal((await listing(mine)).credential!.state, OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_ACTIVE)
    const [next] = await codes(mine, shop, [300n])
    assert.equal((await shop.redeem(await shop.open(next!), 300n)).amount!.amountMinor, 300n)
    assert.equal(await platformTotal(), totalBefore, 'money constant')
  })
})
