// A platform's offline payment rules (services/payment-platform/offline-credentials.ts, payees.ts)
// on a real database, no gRPC: provisioning reserves the allowance in the ledger at once, a code
// is redeemed once per counter within its window and caps, only by its payee, and revoking or
// expiry (at its boundary, `now` passed in) returns the rest; the ledger stays balanced throughout.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { OfflinePaymentCode, OfflinePaymentCodeBody } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import * as ledger from '../../services/payment-platform/ledger.ts'
import * as credentials from '../../services/payment-platform/offline-credentials.ts'
import * as payees from '../../services/payment-platform/payees.ts'
import { paymentPlatform } from '../../services/payment-platform/server.ts'
import type { OfflineCredentialRow, PayeeRow } from '../../services/payment-platform/store/offline-repository.ts'
import * as store from '../../services/payment-platform/store/repository.ts'
import type { PlatformDatabase } from '../../services/payment-platform/store/tables.ts'
import { loadConfig } from '../../services/runtime/config.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { codeMac } from '../../services/runtime/offline-codes.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<PlatformDatabase>(paymentPlatform)
const sealer = new Sealer(randomBytes(32))
const PLATFORM = 'alphapay'
const SETTINGS = loadConfig({}).payment.offline
const HOUR_MS = 3_600_000
const newId = (prefix: string) => `${prefix}${randomUUID().replace(/-/g, '').slice(0, 10)}`

/** A payer (no password needed: provisioning checks it before), a payee with a published key, and a credential. */
async function setUp(options: { openingMinor?: bigint; allowanceMinor?: bigint; capMinor?: bigint; notAfter?: Date } = {}) {
  const payer = await ledger.createPayerAccount(service.db, sealer, {
    platformId: PLATFORM,
    number: `62${newId('').replace(/\D/g, '7').padEnd(14, '7')}`,
    passwordHash: 'unused',
    opening: { currencyCode: 'USD', amountMinor: options.openingMinor ?? 10_000n },
  })
  const collectionNumber = newId('SHOP')
  await ledger.createMerchantAccount(service.db, sealer, { platformId: PLATFORM, merchantId: 'shop', number: collectionNumber, currencyCode: 'USD' })
  const payee = await payees.registerPayee(service.db, sealer, {
    platformId: PLATFORM,
    payeeId: newId('counter'),
    collectionAccount: collectionNumber,
    holder: 'terminal/counter-1',
  })
  const key = await payees.publishPayeeKey(service.db, payee, randomBytes(32), SETTINGS)
  const credential = await inTransaction(service.db, (trx) =>
    credentials.provision(trx, sealer, {
      platformId: PLATFORM,
      terminalId: 'phone',
      payer,
      allowance: { currencyCode: 'USD', amountMinor: options.allowanceMinor ?? 5_000n },
      perCodeCapMinor: options.capMinor ?? 2_000n,
      notAfter: options.notAfter ?? new Date(Date.now() + HOUR_MS),
      counterWindow: SETTINGS.counterWindow,
    }, new Date()),
  )
  return { payer, payee, keyId: key.keyId, credential }
}

type SetUp = Awaited<ReturnType<typeof setUp>>

/** An opened payment code as the payee holds it after unsealing: body + MAC under the credential secret. */
function code(s: SetUp, counter: bigint, amountMinor: bigint, changes: Partial<OfflinePaymentCodeBody> = {}, secretOf = s.credential.credential_id): Uint8Array {
  const body = OfflinePaymentCodeBody.encode({
    credentialId: s.credential.credential_id,
    counter,
    amount: { currencyCode: 'USD', amountMinor },
    platformId: PLATFORM,
    payeeId: s.payee.payee_id,
    payeeKeyId: s.keyId,
    generateTime: new Date(),
    ...changes,
  }).finish()
  return OfflinePaymentCode.encode({ body: Buffer.from(body), mac: codeMac(credentials.credentialSecret(sealer, secretOf), body) }).finish()
}

/** Authenticates and redeems as RedeemOfflineCode does: the checks without a lock, then the locked ones and the money. */
async function redeem(s: SetUp, opened: Uint8Array, chargeMinor: bigint, options: { payee?: PayeeRow; now?: Date } = {}) {
  const ask = { payee: options.payee ?? s.payee, opened, charge: { currencyCode: 'USD', amountMinor: chargeMinor } }
  const now = options.now ?? new Date()
  const authentic = await credentials.authenticate(service.db, sealer, ask, SETTINGS, now)
  return inTransaction(service.db, (trx) => credentials.redeem(trx, sealer, ask, authentic, now))
}

const balanceOf = async (ref: string) => (await store.findAccount(service.db, PLATFORM, ref))!.balance_minor
const credentialNow = async (c: OfflineCredentialRow) => await credentials.credentialFor(service.db, PLATFORM, c.credential_id, { role: 'operator', id: 'ops' })
async function assertBalanced(): Promise<void> {
  for (const [currency, total] of await ledger.balanceTotals(service.db, PLATFORM)) assert.equal(total, 0n, `balances in ${currency} sum to zero`)
}

test(`provisioning reserves the allowance at once; redemption moves reserve -> payee once per counter (${DATABASE_KIND})`, async () => {
  const s = await setUp()
  assert.equal(await balanceOf(s.payer.account_ref), 5_000n, 'the allowance left the payer at provisioning')
  const redemption = await redeem(s, code(s, 1n, 1_200n), 1_000n)
  assert.equal(redemption.amount_minor, 1_000n, 'the payee charges at most the code')
  assert.equal(await balanceOf(s.payee.collection_ref), 1_000n)
  assert.equal((await credentialNow(s.credential)).remaining_minor, 4_000n)

  await refusedWith(redeem(s, code(s, 1n, 500n), 500n), 'OFFLINE_CODE_REPLAYED')
  await redeem(s, code(s, 2n, 500n), 500n)
  assert.equal(await balanceOf(s.payee.collection_ref), 1_500n, 'a replay moved nothing')
  await assertBalanced()
})

test(`provisioning refuses more than the payer holds, or another currency (${DATABASE_KIND})`, async () => {
  const s = await setUp({ openingMinor: 1_000n, allowanceMinor: 1_000n })
  assert.equal(await balanceOf(s.payer.account_ref), 0n, 'the whole balance may be reserved')
  const provision = (payer: store.AccountRow, currencyCode: string, amountMinor: bigint) =>
    inTransaction(service.db, (trx) =>
      credentials.provision(trx, sealer, {
        platformId: PLATFORM,
        terminalId: 'phone',
        payer,
        allowance: { currencyCode, amountMinor },
        perCodeCapMinor: 1n,
        notAfter: new Date(Date.now() + HOUR_MS),
        counterWindow: 32,
      }, new Date()),
    )
  await refusedWith(provision(s.payer, 'USD', 1n), 'INSUFFICIENT_BALANCE')
  await refusedWith(provision(s.payer, 'EUR', 1n), 'CURRENCY_MISMATCH')
  await assertBalanced()
})

test(`counters: any unredeemed one inside the window of the highest is good once; at or below it, refused (${DATABASE_KIND})`, async () => {
  const s = await setUp({ allowanceMinor: 5_000n })
  const window = BigInt(SETTINGS.counterWindow)
  await redeem(s, code(s, 40n, 10n), 10n)
  await refusedWith(redeem(s, code(s, 40n - window, 10n), 10n), 'OFFLINE_COUNTER_REWOUND')
  await redeem(s, code(s, 40n - window + 1n, 10n), 10n) // out of order but inside the window
  await refusedWith(redeem(s, code(s, 0n, 10n), 10n), 'OFFLINE_COUNTER_REWOUND')
})

test(`caps: a code above the per-code cap, a charge above the code, or above what is left is refused and moves nothing (${DATABASE_KIND})`, async () => {
  const s = await setUp({ allowanceMinor: 3_000n, capMinor: 2_000n })
  await refusedWith(redeem(s, code(s, 1n, 2_001n), 1n), 'OFFLINE_CAP_EXCEEDED')
  await refusedWith(redeem(s, code(s, 2n, 1_000n), 1_001n), 'OFFLINE_AMOUNT_ABOVE_CODE')
  await redeem(s, code(s, 3n, 2_000n), 2_000n) // the cap itself is allowed
  await refusedWith(redeem(s, code(s, 4n, 1_001n), 1_001n), 'OFFLINE_ALLOWANCE_EXCEEDED')
  await redeem(s, code(s, 5n, 1_000n), 1_000n) // exactly what is left
  assert.equal((await credentialNow(s.credential)).remaining_minor, 0n)
  assert.equal(await balanceOf(s.payee.collection_ref), 3_000n)
  await assertBalanced()
})

test(`only the payee the code was made for redeems it; an altered code or one made without the secret fails its MAC (${DATABASE_KIND})`, async () => {
  const s = await setUp()
  const other = await setUp()
  await refusedWith(redeem(s, code(s, 1n, 100n), 100n, { payee: other.payee }), 'OFFLINE_PAYEE_MISMATCH')
  const badMac = code(s, 2n, 100n)
  badMac[badMac.length - 1]! ^= 1 // the MAC is the code's last field
  await refusedWith(redeem(s, badMac, 100n), 'OFFLINE_CODE_FORGED')
  // A larger amount written into the body under the original MAC.
  const original = OfflinePaymentCode.decode(code(s, 3n, 100n))
  const inflated = OfflinePaymentCodeBody.encode({ ...OfflinePaymentCodeBody.decode(original.body), amount: { currencyCode: 'USD', amountMinor: 1_000n } }).finish()
  await refusedWith(redeem(s, OfflinePaymentCode.encode({ body: Buffer.from(inflated), mac: original.mac }).finish(), 1_000n), 'OFFLINE_CODE_FORGED')
  await refusedWith(redeem(s, code(s, 3n, 100n, {}, 'a guessed secret'), 100n), 'OFFLINE_CODE_FORGED')
  await refusedWith(redeem(s, code(s, 4n, 100n, { payeeKeyId: 'pk-never-published' }), 100n), 'PAYEE_KEY_UNKNOWN')
  await refusedWith(redeem(s, code(s, 5n, 100n, { credentialId: 'OCNOSUCHCREDENTIAL' }), 100n), 'OFFLINE_CREDENTIAL_NOT_FOUND')
  await refusedWith(redeem(s, new Uint8Array([1, 2, 3]), 100n), 'OFFLINE_CODE_UNREADABLE')
  assert.equal(await balanceOf(s.payee.collection_ref), 0n)
})

test(`the window: a code made up to not_after is good, one made after it is not; a credential is expired from not_after on (${DATABASE_KIND})`, async () => {
  const notAfter = new Date(Date.now() + HOUR_MS)
  const s = await setUp({ notAfter })
  const before = new Date(notAfter.getTime() - 60_000)
  await credentials.authenticate(
    service.db,
    sealer,
    { payee: s.payee, opened: code(s, 1n, 10n, { generateTime: notAfter }), charge: { currencyCode: 'USD', amountMinor: 10n } },
    SETTINGS,
    before,
  )
  await refusedWith(
    credentials.authenticate(
      service.db,
      sealer,
      { payee: s.payee, opened: code(s, 1n, 10n, { generateTime: new Date(notAfter.getTime() + 1) }), charge: { currencyCode: 'USD', amountMinor: 10n } },
      SETTINGS,
      before,
    ),
    'OFFLINE_CODE_OUTSIDE_WINDOW',
  )
  const ask = { payee: s.payee, opened: code(s, 2n, 10n, { generateTime: before }), charge: { currencyCode: 'USD', amountMinor: 10n } }
  await credentials.authenticate(service.db, sealer, ask, SETTINGS, new Date(notAfter.getTime() - 1))
  await refusedWith(credentials.authenticate(service.db, sealer, ask, SETTINGS, notAfter), 'OFFLINE_CREDENTIAL_EXPIRED')
  assert.equal(credentials.effectiveCredentialState(s.credential, new Date(notAfter.getTime() - 1)), 'active')
  assert.equal(credentials.effectiveCredentialState(s.credential, notAfter), 'expired')
})

test(`revoking returns what is left once; expiry sweeps return it at not_after, not before (${DATABASE_KIND})`, async () => {
  const s = await setUp({ allowanceMinor: 5_000n })
  await redeem(s, code(s, 1n, 1_500n), 1_500n)
  const revoked = await inTransaction(service.db, (trx) => credentials.revoke(trx, sealer, PLATFORM, s.credential.credential_id, new Date()))
  assert.deepEqual([revoked.credential.state, revoked.returnedMinor], ['revoked', 3_500n])
  assert.equal(await balanceOf(s.payer.account_ref), 10_000n - 1_500n, 'the rest is back with the payer')
  assert.equal((await inTransaction(service.db, (trx) => credentials.revoke(trx, sealer, PLATFORM, s.credential.credential_id, new Date()))).returnedMinor, 0n, 'once')
  await refusedWith(redeem(s, code(s, 2n, 10n), 10n), 'OFFLINE_CREDENTIAL_REVOKED')

  const notAfter = new Date(Date.now() + 2 * HOUR_MS)
  const e = await setUp({ allowanceMinor: 2_000n, notAfter })
  await inTransaction(service.db, (trx) => credentials.sweepExpired(trx, sealer, new Date(notAfter.getTime() - 1), 100))
  assert.equal((await credentialNow(e.credential)).state, 'active', 'not swept before not_after')
  await inTransaction(service.db, (trx) => credentials.sweepExpired(trx, sealer, notAfter, 100))
  assert.equal((await credentialNow(e.credential)).state, 'expired')
  assert.equal(await balanceOf(e.payer.account_ref), 10_000n, 'its whole allowance returned')
  await assertBalanced()
})
