// SQL of offline payment codes (payees, payee keys, offline credentials, redemptions). Functions
// take the database or a transaction; the ones that lock rows take only a transaction.
import { type ExpressionBuilder, type Kysely, type Selectable, sql, type Transaction } from 'kysely'
import type { OfflineCredentialsTable, OfflineRedemptionsTable, PayeeKeysTable, PayeesTable, PlatformDatabase } from './tables.ts'

type Db = Kysely<PlatformDatabase>
type Trx = Transaction<PlatformDatabase>
export type PayeeRow = Selectable<PayeesTable>
export type PayeeKeyRow = Selectable<PayeeKeysTable>
export type OfflineCredentialRow = Selectable<OfflineCredentialsTable>
export type OfflineRedemptionRow = Selectable<OfflineRedemptionsTable>

/** Inserts a payee; undefined when the id is taken on that platform. */
export async function insertPayee(db: Db, row: Omit<PayeeRow, 'created_at'>): Promise<PayeeRow | undefined> {
  return db
    .insertInto('payees')
    .values(row)
    .onConflict((oc) => oc.columns(['platform_id', 'payee_id']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findPayee(db: Db, platformId: string, payeeId: string): Promise<PayeeRow | undefined> {
  return db.selectFrom('payees').selectAll().where('platform_id', '=', platformId).where('payee_id', '=', payeeId).executeTakeFirst()
}

export async function insertPayeeKey(db: Db, row: Omit<PayeeKeyRow, 'created_at'>): Promise<PayeeKeyRow> {
  return db.insertInto('payee_keys').values(row).returningAll().executeTakeFirstOrThrow()
}

/** The payee's newest key made after `since`, if any. */
export async function findNewestPayeeKey(db: Db, platformId: string, payeeId: string, since: Date): Promise<PayeeKeyRow | undefined> {
  return db
    .selectFrom('payee_keys')
    .selectAll()
    .where('platform_id', '=', platformId)
    .where('payee_id', '=', payeeId)
    .where('created_at', '>', since)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst()
}

export async function findPayeeKey(db: Db, platformId: string, payeeId: string, keyId: string): Promise<PayeeKeyRow | undefined> {
  return db.selectFrom('payee_keys').selectAll().where('platform_id', '=', platformId).where('payee_id', '=', payeeId).where('key_id', '=', keyId).executeTakeFirst()
}

export async function insertCredential(trx: Trx, row: Omit<OfflineCredentialRow, 'created_at' | 'highest_counter' | 'ended_at' | 'state'>): Promise<OfflineCredentialRow> {
  return trx
    .insertInto('offline_credentials')
    .values({ ...row, state: 'active', ended_at: null })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findCredential(db: Db, platformId: string, credentialId: string): Promise<OfflineCredentialRow | undefined> {
  return db.selectFrom('offline_credentials').selectAll().where('platform_id', '=', platformId).where('credential_id', '=', credentialId).executeTakeFirst()
}

/** Where `terminalId`'s latest enrolment ended (rental-boundary.ts), as a scalar subquery; null while none did. */
export const enrolmentEndedAt = (eb: ExpressionBuilder<any, any>, terminalId: string) =>
  (eb as ExpressionBuilder<PlatformDatabase, never>).selectFrom('ended_enrolments').select('ended_at').where('terminal_id', '=', terminalId)

/** A credential, and whether it was provisioned before `terminalId`'s latest enrolment ended: the same one statement. */
export async function findCredentialOf(
  db: Db,
  platformId: string,
  credentialId: string,
  terminalId: string,
): Promise<(OfflineCredentialRow & { of_ended_enrolment: boolean }) | undefined> {
  return db
    .selectFrom('offline_credentials')
    .selectAll()
    .select((eb) => sql<boolean>`coalesce(${eb.ref('created_at')} < (${enrolmentEndedAt(eb, terminalId)}), false)`.as('of_ended_enrolment'))
    .where('platform_id', '=', platformId)
    .where('credential_id', '=', credentialId)
    .executeTakeFirst()
}

/** Records where a terminal's enrolment ended (never moved back: a late redelivery of an earlier removal changes nothing). */
export async function recordEnrolmentEnd(trx: Trx, terminalId: string, endedAt: Date): Promise<void> {
  await trx
    .insertInto('ended_enrolments')
    .values({ terminal_id: terminalId, ended_at: endedAt })
    .onConflict((oc) => oc.column('terminal_id').doUpdateSet({ ended_at: sql`greatest(ended_enrolments.ended_at, excluded.ended_at)` }))
    .execute()
}

/** A terminal's active credentials provisioned before `before`, locked (all platforms). */
export async function lockTerminalCredentials(trx: Trx, terminalId: string, before: Date): Promise<OfflineCredentialRow[]> {
  return trx
    .selectFrom('offline_credentials')
    .selectAll()
    .where('terminal_id', '=', terminalId)
    .where('created_at', '<', before)
    .where('state', '=', 'active')
    .orderBy('credential_id')
    .forUpdate()
    .execute()
}

export async function lockCredential(trx: Trx, platformId: string, credentialId: string): Promise<OfflineCredentialRow | undefined> {
  return trx.selectFrom('offline_credentials').selectAll().where('platform_id', '=', platformId).where('credential_id', '=', credentialId).forUpdate().executeTakeFirst()
}

/** Records a redemption: lowers what is left, raises the highest counter. */
export async function recordRedemption(trx: Trx, credential: OfflineCredentialRow, row: Omit<OfflineRedemptionRow, 'redeemed_at'>): Promise<OfflineRedemptionRow> {
  await trx
    .updateTable('offline_credentials')
    .set({
      remaining_minor: credential.remaining_minor - row.amount_minor,
      highest_counter: row.counter > credential.highest_counter ? row.counter : credential.highest_counter,
    })
    .where('credential_id', '=', credential.credential_id)
    .execute()
  return trx.insertInto('offline_redemptions').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function isCounterRedeemed(trx: Trx, credentialId: string, counter: bigint): Promise<boolean> {
  return (
    (await trx.selectFrom('offline_redemptions').select('redemption_id').where('credential_id', '=', credentialId).where('counter', '=', counter).executeTakeFirst()) !== undefined
  )
}

/** Ends a credential: nothing left, the state given, ended now. */
export async function endCredential(trx: Trx, credentialId: string, state: 'revoked' | 'expired', at: Date): Promise<OfflineCredentialRow> {
  return trx.updateTable('offline_credentials').set({ state, remaining_minor: 0n, ended_at: at }).where('credential_id', '=', credentialId).returningAll().executeTakeFirstOrThrow()
}

/** Active credentials past their window (a bounded batch, SKIP LOCKED: replicas sweep side by side). */
export async function lockExpiredCredentials(trx: Trx, now: Date, limit: number): Promise<OfflineCredentialRow[]> {
  return trx
    .selectFrom('offline_credentials')
    .selectAll()
    .where('state', '=', 'active')
    .where('not_after', '<=', now)
    .orderBy('not_after')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute()
}

/** A page of a credential's redemptions, newest first (by counter order of arrival: redeemed_at, then id). */
export async function listRedemptions(db: Db, credentialId: string, beforeCounter: bigint | undefined, limit: number): Promise<OfflineRedemptionRow[]> {
  let query = db.selectFrom('offline_redemptions').selectAll().where('credential_id', '=', credentialId).orderBy('counter', 'desc').limit(limit)
  if (beforeCounter !== undefined) query = query.where('counter', '<', beforeCounter)
  return query.execute()
}

/** Ended credentials (their redemptions go with them: on delete cascade), bounded, SKIP LOCKED. */
export async function deleteCredentialsEndedBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('offline_credentials')
    .where('credential_id', 'in', (eb) => eb.selectFrom('offline_credentials').select('credential_id').where('ended_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** Payee keys made before `before` (the caller passes a cutoff past every such key's not_after). */
export async function deletePayeeKeysBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('payee_keys')
    .where('key_id', 'in', (eb) => eb.selectFrom('payee_keys').select('key_id').where('created_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
