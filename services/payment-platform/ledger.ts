// Business rules of a payment platform: accounts, prepay transactions, payment with the payment
// password, refunds, and the double-entry ledger in which every transfer writes a debit and an
// equal credit inside one database transaction (so the sum of all balances never changes).
import { randomBytes, randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import type { PaymentSettings } from '../runtime/config.ts'
import { inTransaction } from '../runtime/database.ts'
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, PermissionDeniedError, quote, ResourceExhaustedError } from '../runtime/errors.ts'
import { verifyPassword } from '../runtime/passwords.ts'
import { maskAccount, type Sealer } from '../runtime/sealing.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Db = Kysely<PlatformDatabase>
type Trx = Transaction<PlatformDatabase>

export interface Money {
  readonly currencyCode: string
  readonly amountMinor: bigint
}

export type EffectiveTransactionState = store.TransactionRow['state'] | 'expired'

export function effectiveState(txn: store.TransactionRow, now: Date): EffectiveTransactionState {
  return txn.state === 'pending' && txn.expires_at <= now ? 'expired' : txn.state
}

export function assertPlatform(platformIds: readonly string[], platformId: string): void {
  if (!platformIds.includes(platformId))
    throw new NotFoundError('PLATFORM_NOT_FOUND', `platform_id: this server runs platforms ${platformIds.join(', ')}, not ${quote(platformId)}`)
}

export const accountRef = (sealer: Sealer, platformId: string, number: string): string => sealer.fingerprint(`${platformId}\0${number}`, 'platform-account')

/** The platform's own accounts: where opening balances come from, and where offline allowances wait. */
const INTERNAL_ACCOUNTS = { issuance: 'ISSUANCE', reserve: 'OFFLINERESERVE' } as const

/** The platform's internal account of `kind` for a currency ("ISSUANCEUSD", "OFFLINERESERVEUSD"), made on first use. */
export async function ensureInternalAccount(trx: Trx, sealer: Sealer, platformId: string, kind: keyof typeof INTERNAL_ACCOUNTS, currencyCode: string): Promise<store.AccountRow> {
  const number = `${INTERNAL_ACCOUNTS[kind]}${currencyCode}`
  const ref = accountRef(sealer, platformId, number)
  return (
    (await store.insertAccount(trx, {
      platformId,
      accountRef: ref,
      sealedNumber: sealer.seal(number, ref),
      maskedNumber: number,
      kind,
      merchantId: null,
      currencyCode,
      passwordHash: null,
    })) ?? (await store.findAccount(trx, platformId, ref))!
  )
}

/** One ledger journal: `from` debited, `to` credited by the same amount (both rows locked by the caller). */
export async function transfer(trx: Trx, platformId: string, from: store.AccountRow, to: store.AccountRow, money: Money, serialNumber: string | null): Promise<void> {
  const journalId = randomUUID()
  const entry = (account: store.AccountRow, delta: bigint) => ({
    platform_id: platformId,
    journal_id: journalId,
    serial_number: serialNumber,
    account_ref: account.account_ref,
    masked_number: account.masked_number,
    delta_minor: delta,
    currency_code: money.currencyCode,
  })
  await store.postJournal(trx, platformId, [entry(from, -money.amountMinor), entry(to, money.amountMinor)])
}

export async function createPayerAccount(db: Db, sealer: Sealer, input: { platformId: string; number: string; passwordHash: string; opening: Money }): Promise<store.AccountRow> {
  return inTransaction(db, async (trx) => {
    const ref = accountRef(sealer, input.platformId, input.number)
    const payer = await store.insertAccount(trx, {
      platformId: input.platformId,
      accountRef: ref,
      sealedNumber: sealer.seal(input.number, ref),
      maskedNumber: maskAccount(input.number),
      kind: 'payer',
      merchantId: null,
      currencyCode: input.opening.currencyCode,
      passwordHash: input.passwordHash,
    })
    if (!payer) throw new AlreadyExistsError('ACCOUNT_EXISTS', `payer_account already exists on platform ${input.platformId}`)
    if (input.opening.amountMinor > 0n) {
      const issuance = await ensureInternalAccount(trx, sealer, input.platformId, 'issuance', input.opening.currencyCode)
      const locked = await store.lockAccounts(trx, input.platformId, [issuance.account_ref, ref])
      await transfer(trx, input.platformId, locked.get(issuance.account_ref)!, locked.get(ref)!, input.opening, null)
    }
    return (await store.findAccount(trx, input.platformId, ref))!
  })
}

export async function createMerchantAccount(
  db: Db,
  sealer: Sealer,
  input: { platformId: string; merchantId: string; number: string; currencyCode: string },
): Promise<store.AccountRow> {
  const ref = accountRef(sealer, input.platformId, input.number)
  const row = await store.insertAccount(db, {
    platformId: input.platformId,
    accountRef: ref,
    sealedNumber: sealer.seal(input.number, ref),
    maskedNumber: input.number, // a collection account is printed on invoices: not secret
    kind: 'collection',
    merchantId: input.merchantId,
    currencyCode: input.currencyCode,
    passwordHash: null,
  })
  if (!row) throw new AlreadyExistsError('ACCOUNT_EXISTS', `collection_account ${input.number} already exists on platform ${input.platformId}`)
  return row
}

export async function getAccount(db: Db, sealer: Sealer, platformId: string, number: string): Promise<store.AccountRow> {
  const row = await store.findAccount(db, platformId, accountRef(sealer, platformId, number))
  if (!row) throw new NotFoundError('ACCOUNT_NOT_FOUND', `account: no such account on platform ${platformId}`)
  return row
}

export async function createPrepay(
  db: Db,
  sealer: Sealer,
  input: {
    platformId: string
    payerNumber: string
    amount: Money
    collectionNumber: string
    merchantId: string
    merchantOrderId: string
    description: string
    resultKeyId: string
    terminalId: string
    /** The merchant order's deadline: the transaction expires no later. */
    orderExpiresAt?: Date
  },
  settings: PaymentSettings,
  now: Date,
): Promise<store.TransactionRow> {
  if (input.orderExpiresAt && input.orderExpiresAt <= now) {
    throw new FailedPreconditionError('ORDER_EXPIRED', `expire_time: merchant order ${input.merchantOrderId} expired at ${input.orderExpiresAt.toISOString()}`)
  }
  const ownExpiry = new Date(now.getTime() + settings.prepayTtlMs)
  const expiresAt = input.orderExpiresAt && input.orderExpiresAt < ownExpiry ? input.orderExpiresAt : ownExpiry
  const [payerRef, collectionRef] = [accountRef(sealer, input.platformId, input.payerNumber), accountRef(sealer, input.platformId, input.collectionNumber)]
  const accounts = await store.findAccounts(db, input.platformId, [payerRef, collectionRef])
  const payer = accounts.get(payerRef)
  if (!payer || payer.kind !== 'payer') throw new NotFoundError('PAYER_NOT_FOUND', `payer_account: no payer account like that on platform ${input.platformId}`)
  const collection = accounts.get(collectionRef)
  if (!collection || collection.kind !== 'collection' || collection.merchant_id !== input.merchantId) {
    throw new NotFoundError(
      'COLLECTION_ACCOUNT_NOT_FOUND',
      `collection_account ${input.collectionNumber} of merchant ${input.merchantId} does not exist on platform ${input.platformId}`,
    )
  }
  for (const account of [payer, collection]) {
    if (account.currency_code !== input.amount.currencyCode) {
      throw new FailedPreconditionError('CURRENCY_MISMATCH', `amount is in ${input.amount.currencyCode} but account ${account.masked_number} holds ${account.currency_code}`)
    }
  }
  return store.insertTransaction(db, {
    serial_number: `TX${randomBytes(10).toString('hex').toUpperCase()}`,
    platform_id: input.platformId,
    amount_minor: input.amount.amountMinor,
    currency_code: input.amount.currencyCode,
    payer_ref: payer.account_ref,
    masked_payer: payer.masked_number,
    collection_ref: collection.account_ref,
    collection_account: input.collectionNumber,
    merchant_id: input.merchantId,
    merchant_order_id: input.merchantOrderId,
    description: input.description,
    expires_at: expiresAt,
    result_key_id: input.resultKeyId,
    terminal_id: input.terminalId,
  })
}

export function findTransaction(db: Db, platformId: string, serialNumber: string): Promise<store.TransactionRow | undefined> {
  return store.findTransaction(db, platformId, serialNumber)
}

export async function getTransaction(db: Db, platformId: string, serialNumber: string): Promise<store.TransactionRow> {
  const txn = await store.findTransaction(db, platformId, serialNumber)
  if (!txn) throw new NotFoundError('TRANSACTION_NOT_FOUND', `serial_number: no transaction ${quote(serialNumber)} on platform ${platformId}`)
  return txn
}

function assertPayable(txn: store.TransactionRow, now: Date): void {
  const state = effectiveState(txn, now)
  if (state === 'pending') return
  if (state === 'succeeded') throw new FailedPreconditionError('ALREADY_PAID', `transaction ${txn.serial_number} is already paid`)
  throw new FailedPreconditionError(`TRANSACTION_${state.toUpperCase()}`, `transaction ${txn.serial_number} is ${state} and can no longer be paid`)
}

/**
 * Checks the payment password of a transaction's payer (Pay, PaySealed); see checkPayerPassword.
 */
export async function checkPaymentPassword(
  db: Db,
  txn: store.TransactionRow,
  password: string,
  settings: PaymentSettings,
  now: Date,
  beforeCounting?: (trx: Trx) => Promise<void>,
  /** The payer's hash and lock, when the caller read them with the transaction (store.findTransactionToPay). */
  known?: { password_hash: string | null; locked_until: Date | null },
): Promise<void> {
  assertPayable(txn, now)
  await checkPayerPassword(db, txn.platform_id, txn.payer_ref, password, settings, now, beforeCounting, known)
}

/**
 * Checks a payer account's payment password outside any transaction (the hash is slow), for
 * every use of it (Pay, PaySealed, offline provisioning): refused while locked; a wrong password
 * is counted (and may lock the account) before the refusal is thrown; `beforeCounting` runs in
 * the same database transaction as the count (a sealed blob is used up with it), and a throw from
 * it leaves the count alone. `known`: the payer's hash and lock when the caller already read them.
 */
export async function checkPayerPassword(
  db: Db,
  platformId: string,
  payerRef: string,
  password: string,
  settings: PaymentSettings,
  now: Date,
  beforeCounting?: (trx: Trx) => Promise<void>,
  known?: { password_hash: string | null; locked_until: Date | null },
): Promise<void> {
  const payer = known ?? (await store.findAccount(db, platformId, payerRef))
  if (!payer?.password_hash) throw new NotFoundError('PAYER_NOT_FOUND', 'the payer account of this transaction no longer exists')
  if (payer.locked_until && payer.locked_until > now) {
    throw new ResourceExhaustedError(
      'PAYMENT_LOCKED',
      `too many wrong payment passwords; try again after ${payer.locked_until.toISOString()}`,
      payer.locked_until.getTime() - now.getTime(),
    )
  }
  if (await verifyPassword(payer.password_hash, password)) return
  const after = await inTransaction(db, async (trx) => {
    await beforeCounting?.(trx)
    return store.recordPasswordFailure(trx, platformId, payerRef, settings.maxPasswordFailures, settings.passwordLockMs)
  })
  const left = Math.max(0, settings.maxPasswordFailures - (after?.failed_attempts ?? 0))
  throw new PermissionDeniedError('PAYMENT_PASSWORD_WRONG', `payment_password is wrong; ${left} attempt(s) left before the account locks`, { attempts_left: String(left) })
}

/**
 * When the payer names the account it pays from (sealed credentials may), it must be the
 * transaction's payer: compared by keyed account ref, never in clear.
 */
export function assertPaysFrom(sealer: Sealer, txn: store.TransactionRow, payerNumber: string): void {
  if (accountRef(sealer, txn.platform_id, payerNumber) !== txn.payer_ref) {
    throw new FailedPreconditionError(
      'SEALED_PAYER_MISMATCH',
      `the sealed payer_account is not the payer account of transaction ${txn.serial_number} (${txn.masked_payer}); prepay with that account's binding`,
    )
  }
}

/**
 * Marks a payable transaction paid at `now`, in the caller's transaction; movePayment moves its
 * money in the same one (a refusal there rolls this back with everything else: it stays payable).
 */
export async function completePayment(trx: Trx, platformId: string, serialNumber: string, now: Date): Promise<store.TransactionRow> {
  // One reading of the clock: the completion time (signed in the result) is never after the expiry it was checked against.
  const txn = await store.completePending(trx, platformId, serialNumber, now)
  if (txn) return txn
  // Not payable at `now`: the reason, from the row as it is.
  const found = await store.findTransaction(trx, platformId, serialNumber)
  if (!found) throw new NotFoundError('TRANSACTION_NOT_FOUND', `serial_number: no transaction ${quote(serialNumber)}`)
  assertPayable(found, now)
  throw new FailedPreconditionError('TRANSACTION_CHANGED', `transaction ${serialNumber} changed while it was being paid`)
}

/**
 * Moves a completed payment's money payer -> collection in one ledger journal, in one statement
 * (store.movePaymentMoney); the balance never goes below zero, and a right password forgets earlier
 * wrong ones.
 */
export async function movePayment(trx: Trx, txn: store.TransactionRow): Promise<void> {
  const moved = await store.movePaymentMoney(trx, {
    platformId: txn.platform_id,
    payerRef: txn.payer_ref,
    collectionRef: txn.collection_ref,
    amountMinor: txn.amount_minor,
    currencyCode: txn.currency_code,
    journalId: randomUUID(),
    serialNumber: txn.serial_number,
  })
  if (moved === 2) return
  // No journal was written; a credit to the collection without it is undone with the caller's transaction, which this refusal rolls back.
  throw new FailedPreconditionError(
    'INSUFFICIENT_BALANCE',
    `the payer account ${txn.masked_payer} lacks funds for ${txn.amount_minor} ${txn.currency_code}; the order stays payable`,
  )
}

/** Moves a succeeded transaction's money back to the payer. */
export async function refund(trx: Trx, platformId: string, serialNumber: string, now: Date): Promise<store.TransactionRow> {
  const txn = await store.lockTransaction(trx, platformId, serialNumber)
  if (!txn) throw new NotFoundError('TRANSACTION_NOT_FOUND', `serial_number: no transaction ${quote(serialNumber)}`)
  if (txn.state === 'refunded') return txn
  if (txn.state !== 'succeeded') throw new FailedPreconditionError('NOT_PAID', `transaction ${serialNumber} is ${effectiveState(txn, now)}; only a paid one can be refunded`)
  const accounts = await store.lockAccounts(trx, platformId, [txn.payer_ref, txn.collection_ref])
  await transfer(
    trx,
    platformId,
    accounts.get(txn.collection_ref)!,
    accounts.get(txn.payer_ref)!,
    { currencyCode: txn.currency_code, amountMinor: txn.amount_minor },
    txn.serial_number,
  )
  return store.setTransactionState(trx, txn.serial_number, 'refunded', now)
}

/** Cancels a transaction that is not paid; a paid one cannot be cancelled (refund it). */
export async function cancel(trx: Trx, platformId: string, serialNumber: string, now: Date): Promise<store.TransactionRow> {
  const txn = await store.lockTransaction(trx, platformId, serialNumber)
  if (!txn) throw new NotFoundError('TRANSACTION_NOT_FOUND', `serial_number: no transaction ${quote(serialNumber)}`)
  if (txn.state === 'cancelled') return txn
  if (txn.state !== 'pending') throw new FailedPreconditionError('ALREADY_PAID', `transaction ${serialNumber} is ${txn.state}; it cannot be cancelled`)
  return store.setTransactionState(trx, txn.serial_number, 'cancelled', now)
}

export function listLedgerEntries(db: Db, platformId: string, accountRefValue: string, before: bigint | undefined, limit: number) {
  return store.listLedgerEntries(db, platformId, accountRefValue, before, limit)
}

export function balanceTotals(db: Db, platformId: string) {
  return store.balanceTotals(db, platformId)
}
