// A payment platform's ledger rules (services/payment-platform/ledger.ts) on a real database, no
// gRPC: every transfer is one balanced journal (so the platform's balances always sum to zero per
// currency), a transaction settles once and refunds once, a payer never goes below zero, expiry
// holds at its boundary, and wrong payment passwords lock the payer.
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { sql } from 'kysely'
import * as ledger from '../../services/payment-platform/ledger.ts'
import { paymentPlatform } from '../../services/payment-platform/server.ts'
import * as store from '../../services/payment-platform/store/repository.ts'
import type { PlatformDatabase } from '../../services/payment-platform/store/tables.ts'
import { loadConfig, type PaymentSettings } from '../../services/runtime/config.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { hashPassword } from '../../services/runtime/passwords.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, refusedWith, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<PlatformDatabase>(paymentPlatform)
const sealer = new Sealer(randomBytes(32))
const PLATFORM = 'alphapay'
const SETTINGS: PaymentSettings = { ...loadConfig({}).payment, maxPasswordFailures: 3 }
const PAYMENT_PASSWORD = '246810'
let passwordHash: string | undefined

/** A payer with an opening balance and a merchant's collection account, both new. */
async function parties(openingMinor = 10_000n, currencyCode = 'USD') {
  passwordHash ??= await hashPassword(PAYMENT_PASSWORD)
  const payerNumber = `62${randomUUID().replace(/\D/g, '').slice(0, 14).padEnd(14, '7')}`
  const collectionNumber = `SHOP-${randomUUID().slice(0, 8)}`
  const merchantId = `merchant-${randomUUID().slice(0, 8)}`
  const payer = await ledger.createPayerAccount(service.db, sealer, {
    platformId: PLATFORM,
    number: payerNumber,
    passwordHash,
    opening: { currencyCode, amountMinor: openingMinor },
  })
  const collection = await ledger.createMerchantAccount(service.db, sealer, { platformId: PLATFORM, merchantId, number: collectionNumber, currencyCode })
  return { payer, collection, payerNumber, collectionNumber, merchantId }
}

type Parties = Awaited<ReturnType<typeof parties>>

function prepay(p: Parties, amountMinor: bigint, extra: { orderExpiresAt?: Date; currencyCode?: string; settings?: PaymentSettings } = {}) {
  return ledger.createPrepay(
    service.db,
    sealer,
    {
      platformId: PLATFORM,
      payerNumber: p.payerNumber,
      amount: { currencyCode: extra.currencyCode ?? 'USD', amountMinor },
      collectionNumber: p.collectionNumber,
      merchantId: p.merchantId,
      merchantOrderId: randomUUID(),
      description: 'Gem pack',
      resultKeyId: 'key-1',
      terminalId: 'phone',
      orderExpiresAt: extra.orderExpiresAt,
    },
    extra.settings ?? SETTINGS,
    new Date(),
  )
}

/** Pay's ledger steps, as its handler takes them: the transaction completed, then its money moved. */
const settle = (serial: string) =>
  inTransaction(service.db, async (trx) => {
    const paid = await ledger.completePayment(trx, PLATFORM, serial, new Date())
    await ledger.movePayment(trx, paid)
    return paid
  })
const refund = (serial: string) => inTransaction(service.db, (trx) => ledger.refund(trx, PLATFORM, serial, new Date()))
const cancel = (serial: string) => inTransaction(service.db, (trx) => ledger.cancel(trx, PLATFORM, serial, new Date()))
const balanceOf = async (account: store.AccountRow) => (await store.findAccount(service.db, PLATFORM, account.account_ref))!.balance_minor

/** The double-entry invariants: every journal sums to zero, and so do all balances of each currency. */
async function assertBalanced(): Promise<void> {
  const unbalanced = await service.db
    .selectFrom('ledger_entries')
    .select(['journal_id', (eb) => eb.fn.sum<string>('delta_minor').as('sum')])
    .groupBy('journal_id')
    .having(sql`sum(delta_minor)`, '!=', 0)
    .execute()
  assert.deepEqual(unbalanced, [], 'every journal is a debit and an equal credit')
  for (const [currency, total] of await ledger.balanceTotals(service.db, PLATFORM)) assert.equal(total, 0n, `balances in ${currency} sum to zero`)
  // And every balance is what its entries say it is.
  const sums = await service.db
    .selectFrom('ledger_entries')
    .select(['account_ref', (eb) => eb.fn.sum<string>('delta_minor').as('sum')])
    .where('platform_id', '=', PLATFORM)
    .groupBy('account_ref')
    .execute()
  const byAccount = new Map(sums.map((row) => [row.account_ref, BigInt(row.sum)]))
  for (const account of await service.db.selectFrom('accounts').select(['account_ref', 'masked_number', 'balance_minor']).where('platform_id', '=', PLATFORM).execute()) {
    assert.equal(account.balance_minor, byAccount.get(account.account_ref) ?? 0n, `the balance of ${account.masked_number} is the sum of its entries`)
  }
}

test(`opening balances come from the issuance account in one balanced journal (${DATABASE_KIND})`, async () => {
  const p = await parties(10_000n)
  assert.equal(await balanceOf(p.payer), 10_000n)
  assert.equal(await balanceOf(p.collection), 0n)
  await refusedWith(
    ledger.createPayerAccount(service.db, sealer, { platformId: PLATFORM, number: p.payerNumber, passwordHash: passwordHash!, opening: { currencyCode: 'USD', amountMinor: 1n } }),
    'ACCOUNT_EXISTS',
  )
  await assertBalanced()
})

test(`a payment moves the amount payer -> collection once; a refund moves it back once (${DATABASE_KIND})`, async () => {
  const p = await parties(10_000n)
  const txn = await prepay(p, 1_799n)
  assert.equal(ledger.effectiveState(txn, new Date()), 'pending')
  const settled = await settle(txn.serial_number)
  assert.equal(settled.state, 'succeeded')
  assert.ok(settled.completed_at)
  assert.deepEqual([await balanceOf(p.payer), await balanceOf(p.collection)], [8_201n, 1_799n])
  await assertBalanced()

  await refusedWith(settle(txn.serial_number), 'ALREADY_PAID')
  await refusedWith(cancel(txn.serial_number), 'ALREADY_PAID')
  assert.deepEqual([await balanceOf(p.payer), await balanceOf(p.collection)], [8_201n, 1_799n], 'a second settle moves nothing')

  assert.equal((await refund(txn.serial_number)).state, 'refunded')
  assert.equal((await refund(txn.serial_number)).state, 'refunded', 'a repeated refund is the same refund')
  assert.deepEqual([await balanceOf(p.payer), await balanceOf(p.collection)], [10_000n, 0n], 'refunded exactly once')
  await refusedWith(settle(txn.serial_number), 'TRANSACTION_REFUNDED')
  await assertBalanced()
})

test(`the payer never goes below zero: an unaffordable payment moves nothing and stays payable (${DATABASE_KIND})`, async () => {
  const p = await parties(1_000n)
  const exact = await prepay(p, 1_000n)
  const tooMuch = await prepay(p, 1n)
  await settle(exact.serial_number)
  assert.equal(await balanceOf(p.payer), 0n, 'the whole balance may be spent')
  await refusedWith(settle(tooMuch.serial_number), 'INSUFFICIENT_BALANCE')
  assert.equal(await balanceOf(p.payer), 0n)
  assert.equal((await ledger.getTransaction(service.db, PLATFORM, tooMuch.serial_number)).state, 'pending', 'the order stays payable')
  await assertBalanced()
})

test(`payments racing for one payer's balance: exactly the affordable ones move money, the rest stay payable, and racing refunds do not deadlock the ledger (${DATABASE_KIND})`, async () => {
  const p = await parties(1_000n)
  const first = await prepay(p, 300n)
  await settle(first.serial_number)
  const racing = await Promise.all(Array.from({ length: 6 }, () => prepay(p, 300n)))
  // The six payments (only two affordable after the first) and a refund of the first take the same two accounts at once.
  const outcomes = await Promise.allSettled([...racing.map((txn) => settle(txn.serial_number)), refund(first.serial_number)])
  const refused = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as { reason?: string })
  assert.ok(
    refused.every((e) => e.reason === 'INSUFFICIENT_BALANCE'),
    `only insufficient balances are refused: ${refused.map((e) => e.reason ?? String(e)).join(', ')}`,
  )
  assert.equal(outcomes.at(-1)!.status, 'fulfilled', 'the refund goes through')
  const paid = outcomes.slice(0, -1).filter((o) => o.status === 'fulfilled').length
  assert.ok(paid === 2 || paid === 3, `two payments fit the balance left, three when the refund came first: ${paid}`)
  assert.equal(await balanceOf(p.payer), 1_000n - 300n * BigInt(paid), 'each payment that went through moved its amount once')
  assert.equal(await balanceOf(p.collection), 300n * BigInt(paid))
  for (const [i, txn] of racing.entries()) {
    const state = (await ledger.getTransaction(service.db, PLATFORM, txn.serial_number)).state
    assert.equal(state, outcomes[i]!.status === 'fulfilled' ? 'succeeded' : 'pending', 'a refused payment stays payable')
  }
  await assertBalanced()
})

test(`cancel: a pending transaction is cancelled once and can no longer be paid or refunded (${DATABASE_KIND})`, async () => {
  const p = await parties()
  const txn = await prepay(p, 500n)
  await refusedWith(refund(txn.serial_number), 'NOT_PAID')
  assert.equal((await cancel(txn.serial_number)).state, 'cancelled')
  assert.equal((await cancel(txn.serial_number)).state, 'cancelled', 'idempotent')
  await refusedWith(settle(txn.serial_number), 'TRANSACTION_CANCELLED')
  assert.equal(await balanceOf(p.payer), 10_000n)
  await refusedWith(settle('TX-NO-SUCH'), 'TRANSACTION_NOT_FOUND')
})

test(`expiry: a transaction expires with its order or its own TTL, whichever is first; pending until just before, expired at the boundary (${DATABASE_KIND})`, async () => {
  const p = await parties()
  const orderDeadline = new Date(Date.now() + 60_000)
  const txn = await prepay(p, 100n, { orderExpiresAt: orderDeadline })
  assert.equal(txn.expires_at.getTime(), orderDeadline.getTime(), "the order's deadline is earlier than the platform's own")
  const own = await prepay(p, 100n, { orderExpiresAt: new Date(Date.now() + SETTINGS.prepayTtlMs + 3_600_000) })
  assert.ok(own.expires_at.getTime() <= Date.now() + SETTINGS.prepayTtlMs, "the platform's own TTL when the order's is later")

  assert.equal(ledger.effectiveState(txn, new Date(orderDeadline.getTime() - 1)), 'pending')
  assert.equal(ledger.effectiveState(txn, orderDeadline), 'expired')
  assert.equal(ledger.effectiveState({ ...txn, state: 'succeeded' }, new Date(orderDeadline.getTime() + 1)), 'succeeded', 'a paid transaction does not expire')

  await refusedWith(prepay(p, 100n, { orderExpiresAt: new Date(Date.now() - 1) }), 'ORDER_EXPIRED')
  const instant = await prepay(p, 100n, { settings: { ...SETTINGS, prepayTtlMs: 0 } })
  await refusedWith(settle(instant.serial_number), 'TRANSACTION_EXPIRED')
  assert.equal(await balanceOf(p.payer), 10_000n)
})

test(`prepay refusals: unknown payer, another merchant's collection account, another currency (${DATABASE_KIND})`, async () => {
  const p = await parties()
  const other = await parties()
  await refusedWith(prepay({ ...p, payerNumber: '6200000000000000' }, 1n), 'PAYER_NOT_FOUND')
  await refusedWith(prepay({ ...p, merchantId: other.merchantId }, 1n), 'COLLECTION_ACCOUNT_NOT_FOUND')
  await refusedWith(prepay(p, 1n, { currencyCode: 'EUR' }), 'CURRENCY_MISMATCH')
})

test(`payment password: each wrong one is counted, the payer locks at the limit (even for the right one), and a payment resets the count (${DATABASE_KIND})`, async () => {
  const p = await parties()
  const txn = await prepay(p, 100n)
  for (let left = SETTINGS.maxPasswordFailures - 1; left >= 1; left--) {
    const wrong = await refusedWith(ledger.checkPaymentPassword(service.db, txn, '000000', SETTINGS, new Date()), 'PAYMENT_PASSWORD_WRONG')
    assert.equal(wrong.metadata.attempts_left, String(left))
  }
  await ledger.checkPaymentPassword(service.db, txn, PAYMENT_PASSWORD, SETTINGS, new Date()) // below the limit the right one still passes
  await settle(txn.serial_number)
  assert.equal((await store.findAccount(service.db, PLATFORM, p.payer.account_ref))?.failed_attempts, 0, 'a payment clears the count')

  const next = await prepay(p, 100n)
  for (let i = 0; i < SETTINGS.maxPasswordFailures; i++) await refusedWith(ledger.checkPaymentPassword(service.db, next, '000000', SETTINGS, new Date()), 'PAYMENT_PASSWORD_WRONG')
  await refusedWith(ledger.checkPaymentPassword(service.db, next, PAYMENT_PASSWORD, SETTINGS, new Date()), 'PAYMENT_LOCKED')
  const payer = await store.findAccount(service.db, PLATFORM, p.payer.account_ref)
  assert.ok(payer?.locked_until && payer.locked_until.getTime() > Date.now() + SETTINGS.passwordLockMs - 60_000, 'locked for passwordLockMs')
})

test(`many payments and refunds across payers keep every journal and every currency balanced (${DATABASE_KIND})`, async () => {
  const usd = await parties(50_000n)
  const eur = await parties(20_000n, 'EUR')
  for (let i = 1n; i <= 5n; i++) {
    const a = await prepay(usd, 1_000n * i)
    await settle(a.serial_number)
    if (i % 2n === 0n) await refund(a.serial_number)
    const b = await prepay(eur, 700n * i, { currencyCode: 'EUR' })
    await settle(b.serial_number)
  }
  assert.equal(await balanceOf(usd.payer), 50_000n - (1_000n + 3_000n + 5_000n))
  assert.equal(await balanceOf(eur.collection), 700n * 15n)
  await assertBalanced()
})
