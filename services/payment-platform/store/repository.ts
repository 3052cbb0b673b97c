// SQL of the payment_platform schema. Functions take the database or a transaction; the ones
// that lock rows take only a transaction.
import { type Kysely, type QueryCreator, type Selectable, sql, type Transaction } from 'kysely'
import { type AnswerColumn, readingStoredAnswer, type StoredAnswer } from '../../runtime/idempotency.ts'
import { queryTemplate } from '../../runtime/query-template.ts'
import type {
  AccountKindColumn,
  AccountsTable,
  LedgerEntriesTable,
  PlatformDatabase,
  ResultKeysTable,
  SealedBlobOutcome,
  SealingKeysTable,
  TransactionStateColumn,
  TransactionsTable,
} from './tables.ts'

type Db = Kysely<PlatformDatabase>
export type AccountRow = Selectable<AccountsTable>
export type TransactionRow = Selectable<TransactionsTable>
export type LedgerEntryRow = Selectable<LedgerEntriesTable>

export async function insertAccount(
  db: Db,
  account: {
    platformId: string
    accountRef: string
    sealedNumber: Uint8Array
    maskedNumber: string
    kind: AccountKindColumn
    merchantId: string | null
    currencyCode: string
    passwordHash: string | null
  },
): Promise<AccountRow | undefined> {
  return db
    .insertInto('accounts')
    .values({
      platform_id: account.platformId,
      account_ref: account.accountRef,
      sealed_number: account.sealedNumber,
      masked_number: account.maskedNumber,
      kind: account.kind,
      merchant_id: account.merchantId,
      currency_code: account.currencyCode,
      password_hash: account.passwordHash,
      locked_until: null,
    })
    .onConflict((oc) => oc.columns(['platform_id', 'account_ref']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

/** Two accounts by ref (the payer and the collection account), in one read; the same ref twice reads one. */
export async function findAccounts(db: Db, platformId: string, refs: readonly [string, string]): Promise<Map<string, AccountRow>> {
  const rows = await FIND_TWO_ACCOUNTS.rows(db, { platformId, first: refs[0], second: refs[1] })
  return new Map(rows.map((row) => [row.account_ref, row]))
}
const FIND_TWO_ACCOUNTS = queryTemplate('payment-platform.findTwoAccounts', (db: Db, v: { platformId: string; first: string; second: string }) =>
  db.selectFrom('accounts').selectAll().where('platform_id', '=', v.platformId).where('account_ref', 'in', [v.first, v.second]),
)

export async function findAccount(db: Db, platformId: string, accountRef: string): Promise<AccountRow | undefined> {
  return db.selectFrom('accounts').selectAll().where('platform_id', '=', platformId).where('account_ref', '=', accountRef).executeTakeFirst()
}

/** Locks accounts in a fixed order (by ref), so two transfers never wait on each other in a cycle. */
export async function lockAccounts(trx: Transaction<PlatformDatabase>, platformId: string, refs: string[]): Promise<Map<string, AccountRow>> {
  const sorted = [...new Set(refs)].sort()
  // A payment locks two accounts (payer and collection), a deposit one: those two shapes are templates.
  const rows =
    sorted.length === 2 ? await LOCK_TWO_ACCOUNTS.rows(trx, { platformId, first: sorted[0]!, second: sorted[1]! }) : await lockAccountsQuery(trx, platformId, sorted).execute()
  return new Map(rows.map((row) => [row.account_ref, row]))
}
const lockAccountsQuery = (trx: QueryCreator<PlatformDatabase>, platformId: string, sortedRefs: readonly string[]) =>
  trx.selectFrom('accounts').selectAll().where('platform_id', '=', platformId).where('account_ref', 'in', sortedRefs).orderBy('account_ref').forUpdate()
const LOCK_TWO_ACCOUNTS = queryTemplate('payment-platform.lockTwoAccounts', (trx: Db, v: { platformId: string; first: string; second: string }) =>
  lockAccountsQuery(trx, v.platformId, [v.first, v.second]),
)

/**
 * One ledger journal's whole write in one statement: each account's balance moved by its entry's
 * delta and the entries inserted (the accounts locked by the caller).
 */
export async function postJournal(trx: Transaction<PlatformDatabase>, platformId: string, entries: Omit<LedgerEntryRow, 'entry_id' | 'created_at'>[]): Promise<void> {
  // A sum of one term per entry: right even when two entries name the same account.
  const delta = sql.join(
    entries.map((entry) => sql`(case when account_ref = ${entry.account_ref} then ${entry.delta_minor}::bigint else 0 end)`),
    sql` + `,
  )
  await trx
    .with('moved', (db) =>
      db
        .updateTable('accounts')
        .set({ balance_minor: sql`balance_minor + ${delta}` })
        .where('platform_id', '=', platformId)
        .where('account_ref', 'in', [...new Set(entries.map((entry) => entry.account_ref))])
        .returning('account_ref'),
    )
    .insertInto('ledger_entries')
    .values(entries)
    .execute()
}

/**
 * A paid transaction's money moved payer -> collection, in one statement: both accounts locked in
 * ref order (lockAccounts' own query), the payer debited only if it can afford it (checked on the locked,
 * current row) and its wrong-password count forgotten, the collection credited, and the journal's
 * two entries inserted only when both accounts moved. The collection account, which every payment
 * to its merchant locks, is then held for this statement and the COMMIT only. Returns how many
 * entries were written: 2, or fewer when the payer could not afford it (the caller rolls back).
 */
export async function movePaymentMoney(
  trx: Transaction<PlatformDatabase>,
  move: { platformId: string; payerRef: string; collectionRef: string; amountMinor: bigint; currencyCode: string; journalId: string; serialNumber: string },
): Promise<number> {
  const [first, second] = [move.payerRef, move.collectionRef].sort() as [string, string]
  const rows = await MOVE_PAYMENT_MONEY.rows(trx, { ...move, first, second, debitMinor: -move.amountMinor })
  return rows.length
}
const MOVE_PAYMENT_MONEY = queryTemplate(
  'payment-platform.movePaymentMoney',
  (
    trx: Db,
    v: { platformId: string; payerRef: string; first: string; second: string; amountMinor: bigint; debitMinor: bigint; currencyCode: string; journalId: string; serialNumber: string },
  ) => {
    const isPayer = sql`accounts.account_ref = ${v.payerRef}`
    const delta = sql<bigint>`case when ${isPayer} then ${v.debitMinor}::bigint else ${v.amountMinor}::bigint end`
    return trx
      .with('locked', (db) => lockAccountsQuery(db, v.platformId, [v.first, v.second]).clearSelect().select('account_ref'))
      .with('moved', (db) =>
        db
          .updateTable('accounts')
          .from('locked')
          .set({
            balance_minor: sql`balance_minor + ${delta}`,
            failed_attempts: sql`case when ${isPayer} then 0 else failed_attempts end`,
            locked_until: sql`case when ${isPayer} then null else locked_until end`,
          })
          .where('accounts.platform_id', '=', v.platformId)
          .whereRef('accounts.account_ref', '=', 'locked.account_ref')
          .where(sql<boolean>`(not ${isPayer} or balance_minor >= ${v.amountMinor}::bigint)`)
          .returning(['accounts.account_ref', 'accounts.masked_number', delta.as('delta_minor')]),
      )
      .insertInto('ledger_entries')
      .columns(['platform_id', 'journal_id', 'serial_number', 'account_ref', 'masked_number', 'delta_minor', 'currency_code'])
      .expression((eb) =>
        eb
          .selectFrom('moved')
          .select([
            sql<string>`${v.platformId}::text`.as('platform_id'),
            sql<string>`${v.journalId}::text`.as('journal_id'),
            sql<string>`${v.serialNumber}::text`.as('serial_number'),
            'account_ref',
            'masked_number',
            'delta_minor',
            sql<string>`${v.currencyCode}::text`.as('currency_code'),
          ])
          .where(sql<boolean>`(select count(*) from moved) = 2`),
      )
      .returning('account_ref')
  },
)

export async function recordPasswordFailure(db: Db, platformId: string, accountRef: string, maxFailures: number, lockMs: number): Promise<AccountRow | undefined> {
  return db
    .updateTable('accounts')
    .set({
      failed_attempts: sql`failed_attempts + 1`,
      locked_until: sql`case when failed_attempts + 1 >= ${maxFailures} then now() + ${`${lockMs} milliseconds`}::interval else locked_until end`,
    })
    .where('platform_id', '=', platformId)
    .where('account_ref', '=', accountRef)
    .returningAll()
    .executeTakeFirst()
}

type NewTransaction = Omit<TransactionRow, 'created_at' | 'completed_at' | 'refunded_at' | 'state'>

export async function insertTransaction(db: Db, row: NewTransaction): Promise<TransactionRow> {
  const inserted = await INSERT_TRANSACTION.first(db, row)
  if (!inserted) throw new Error(`transaction ${row.serial_number} was not inserted`)
  return inserted
}
const INSERT_TRANSACTION = queryTemplate('payment-platform.insertTransaction', (db: Db, v: NewTransaction) =>
  db
    .insertInto('transactions')
    .values({
      serial_number: v.serial_number,
      platform_id: v.platform_id,
      amount_minor: v.amount_minor,
      currency_code: v.currency_code,
      payer_ref: v.payer_ref,
      masked_payer: v.masked_payer,
      collection_ref: v.collection_ref,
      collection_account: v.collection_account,
      merchant_id: v.merchant_id,
      merchant_order_id: v.merchant_order_id,
      description: v.description,
      expires_at: v.expires_at,
      result_key_id: v.result_key_id,
      terminal_id: v.terminal_id,
      state: 'pending',
      completed_at: null,
    })
    .returningAll(),
)

export async function findTransaction(db: Db, platformId: string, serialNumber: string): Promise<TransactionRow | undefined> {
  return db.selectFrom('transactions').selectAll().where('platform_id', '=', platformId).where('serial_number', '=', serialNumber).executeTakeFirst()
}

/**
 * What paying a transaction reads before the password hash, in one statement: the transaction,
 * its payer's password hash and lock, and the call's stored answer. Nothing when there is no such
 * transaction (transactions are never deleted, so no answer either).
 */
export async function findTransactionToPay(
  db: Db,
  platformId: string,
  serialNumber: string,
  stored: StoredAnswer<unknown>,
): Promise<{ txn: TransactionRow; payer: { password_hash: string | null; locked_until: Date | null } | undefined; storedAnswer: unknown } | undefined> {
  const row = await FIND_TRANSACTION_TO_PAY.first(db, { platformId, serialNumber }, stored)
  if (!row) return undefined
  const { payer_account_ref, payer_password_hash, payer_locked_until, stored_answer, ...txn } = row
  return {
    txn: txn as TransactionRow,
    payer: payer_account_ref === null ? undefined : { password_hash: payer_password_hash, locked_until: payer_locked_until },
    storedAnswer: stored_answer,
  }
}
const FIND_TRANSACTION_TO_PAY = readingStoredAnswer('payment-platform.findTransactionToPay', (db: Db, v: { platformId: string; serialNumber: string }, answer: AnswerColumn) =>
  db
    .selectFrom('transactions')
    .leftJoin('accounts as payer', (join) => join.onRef('payer.platform_id', '=', 'transactions.platform_id').onRef('payer.account_ref', '=', 'transactions.payer_ref'))
    .selectAll('transactions')
    .select(['payer.account_ref as payer_account_ref', 'payer.password_hash as payer_password_hash', 'payer.locked_until as payer_locked_until'])
    .select((eb) => answer(eb))
    .where('transactions.platform_id', '=', v.platformId)
    .where('transactions.serial_number', '=', v.serialNumber),
)

/**
 * pending -> succeeded at `now`, if it is pending and unexpired then: the statement that decides a
 * payment (a concurrent Pay of the same transaction waits on the row and then finds it paid).
 */
export async function completePending(trx: Transaction<PlatformDatabase>, platformId: string, serialNumber: string, now: Date): Promise<TransactionRow | undefined> {
  return COMPLETE_PENDING.first(trx, { platformId, serialNumber, now })
}
const COMPLETE_PENDING = queryTemplate('payment-platform.completePending', (trx: Db, v: { platformId: string; serialNumber: string; now: Date }) =>
  trx
    .updateTable('transactions')
    .set({ state: 'succeeded', completed_at: v.now })
    .where('platform_id', '=', v.platformId)
    .where('serial_number', '=', v.serialNumber)
    .where('state', '=', 'pending')
    .where('expires_at', '>', v.now)
    .returningAll(),
)

export async function lockTransaction(trx: Transaction<PlatformDatabase>, platformId: string, serialNumber: string): Promise<TransactionRow | undefined> {
  return LOCK_TRANSACTION.first(trx, { platformId, serialNumber })
}
const LOCK_TRANSACTION = queryTemplate('payment-platform.lockTransaction', (trx: Db, v: { platformId: string; serialNumber: string }) =>
  trx.selectFrom('transactions').selectAll().where('platform_id', '=', v.platformId).where('serial_number', '=', v.serialNumber).forUpdate(),
)

/** Moves a transaction to its next state at `at`: a refund records refunded_at and keeps the payment's completed_at. */
export async function setTransactionState(
  trx: Transaction<PlatformDatabase>,
  serialNumber: string,
  state: Exclude<TransactionStateColumn, 'pending'>,
  at: Date,
): Promise<TransactionRow> {
  return trx
    .updateTable('transactions')
    .set(state === 'refunded' ? { state, refunded_at: at } : { state, completed_at: at })
    .where('serial_number', '=', serialNumber)
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function listLedgerEntries(db: Db, platformId: string, accountRef: string, beforeEntryId: bigint | undefined, limit: number): Promise<LedgerEntryRow[]> {
  let query = db.selectFrom('ledger_entries').selectAll().where('platform_id', '=', platformId).where('account_ref', '=', accountRef).orderBy('entry_id', 'desc').limit(limit)
  if (beforeEntryId !== undefined) query = query.where('entry_id', '<', beforeEntryId)
  return query.execute()
}

/** Sum of all balances per currency on a platform: zero when no money was created or lost. */
export async function balanceTotals(db: Db, platformId: string): Promise<Map<string, bigint>> {
  const rows = await db
    .selectFrom('accounts')
    .select(['currency_code', (eb) => eb.fn.sum<string>('balance_minor').as('total')])
    .where('platform_id', '=', platformId)
    .groupBy('currency_code')
    .execute()
  return new Map(rows.map((r) => [r.currency_code, BigInt(r.total)]))
}

export type ResultKeyRow = Selectable<ResultKeysTable>

/** The platform's newest result key, if any. */
export async function findNewestResultKey(db: Db, platformId: string): Promise<ResultKeyRow | undefined> {
  return FIND_NEWEST_RESULT_KEY.first(db, { platformId })
}
const FIND_NEWEST_RESULT_KEY = queryTemplate('payment-platform.findNewestResultKey', (db: Db, v: { platformId: string }) =>
  db.selectFrom('result_keys').selectAll().where('platform_id', '=', v.platformId).orderBy('created_at', 'desc').limit(1),
)

export async function findResultKey(db: Db, keyId: string): Promise<ResultKeyRow | undefined> {
  return db.selectFrom('result_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst()
}

export async function insertResultKey(db: Db, row: Omit<ResultKeyRow, 'created_at'>): Promise<ResultKeyRow> {
  return db.insertInto('result_keys').values(row).returningAll().executeTakeFirstOrThrow()
}

export type SealingKeyRow = Selectable<SealingKeysTable>

/** The platform's newest sealing key, if any. */
export async function findNewestSealingKey(db: Db, platformId: string): Promise<SealingKeyRow | undefined> {
  return db.selectFrom('sealing_keys').selectAll().where('platform_id', '=', platformId).orderBy('created_at', 'desc').limit(1).executeTakeFirst()
}

/** The platform's sealing keys made after `since`, newest first. */
export async function listSealingKeysSince(db: Db, platformId: string, since: Date): Promise<SealingKeyRow[]> {
  return db.selectFrom('sealing_keys').selectAll().where('platform_id', '=', platformId).where('created_at', '>', since).orderBy('created_at', 'desc').execute()
}

export async function findSealingKey(db: Db, platformId: string, keyId: string): Promise<SealingKeyRow | undefined> {
  return db.selectFrom('sealing_keys').selectAll().where('platform_id', '=', platformId).where('key_id', '=', keyId).executeTakeFirst()
}

export async function insertSealingKey(db: Db, row: Omit<SealingKeyRow, 'created_at'>): Promise<SealingKeyRow> {
  return db.insertInto('sealing_keys').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function isSealedBlobUsed(db: Db, digest: string): Promise<boolean> {
  return (await db.selectFrom('sealed_blobs').select('digest').where('digest', '=', digest).executeTakeFirst()) !== undefined
}

/** Records a sealed blob as used; false when it already was (the unique digest decides, across replicas). */
export async function useSealedBlob(
  trx: Transaction<PlatformDatabase>,
  row: { digest: string; platform_id: string; serial_number: string; outcome: SealedBlobOutcome },
): Promise<boolean> {
  const inserted = await trx
    .insertInto('sealed_blobs')
    .values(row)
    .onConflict((oc) => oc.column('digest').doNothing())
    .returning('digest')
    .executeTakeFirst()
  return inserted !== undefined
}

/**
 * Digests of spent sealed credentials made before `before` (bounded, SKIP LOCKED). Only ever
 * called with a cutoff past every sealing key's acceptance, when no such blob can open again.
 */
export async function deleteSealedBlobsBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('sealed_blobs')
    .where('digest', 'in', (eb) => eb.selectFrom('sealed_blobs').select('digest').where('created_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
