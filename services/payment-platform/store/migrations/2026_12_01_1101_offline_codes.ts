// Offline payment codes sealed to the payee: payees and their public keys, offline credentials
// (allowance reserved in the new 'reserve' kind of account) and their redemptions, each counter
// of a credential redeemed at most once.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await allowKinds(db, ['payer', 'collection', 'issuance', 'reserve'])
  await db.schema
    .createTable('payees')
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('payee_id', 'text', (c) => c.notNull())
    .addColumn('collection_ref', 'text', (c) => c.notNull())
    .addColumn('collection_account', 'text', (c) => c.notNull())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('payees_pk', ['platform_id', 'payee_id'])
    .execute()
  await db.schema
    .createTable('payee_keys')
    .addColumn('key_id', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('payee_id', 'text', (c) => c.notNull())
    .addColumn('public_key', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('payee_keys_newest').on('payee_keys').columns(['platform_id', 'payee_id', 'created_at']).execute()
  await db.schema.createIndex('payee_keys_age').on('payee_keys').column('created_at').execute()
  await db.schema
    .createTable('offline_credentials')
    .addColumn('credential_id', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('terminal_id', 'text', (c) => c.notNull())
    .addColumn('payer_ref', 'text', (c) => c.notNull())
    .addColumn('masked_payer', 'text', (c) => c.notNull())
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('per_code_cap_minor', 'bigint', (c) => c.notNull().check(sql`per_code_cap_minor > 0`))
    .addColumn('allowance_minor', 'bigint', (c) => c.notNull().check(sql`allowance_minor > 0`))
    .addColumn('remaining_minor', 'bigint', (c) => c.notNull().check(sql`remaining_minor >= 0`))
    .addColumn('highest_counter', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('counter_window', 'integer', (c) => c.notNull())
    .addColumn('not_before', 'timestamptz', (c) => c.notNull())
    .addColumn('not_after', 'timestamptz', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('active', 'revoked', 'expired')`))
    .addColumn('ended_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('offline_credentials_expiring').on('offline_credentials').columns(['state', 'not_after']).execute()
  await db.schema.createIndex('offline_credentials_ended').on('offline_credentials').column('ended_at').execute()
  await db.schema
    .createTable('offline_redemptions')
    .addColumn('redemption_id', 'text', (c) => c.primaryKey())
    .addColumn('credential_id', 'text', (c) => c.notNull().references('offline_credentials.credential_id').onDelete('cascade'))
    .addColumn('counter', 'bigint', (c) => c.notNull())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('payee_id', 'text', (c) => c.notNull())
    .addColumn('amount_minor', 'bigint', (c) => c.notNull().check(sql`amount_minor > 0`))
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('generated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('redeemed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('offline_redemptions_once', ['credential_id', 'counter'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['offline_redemptions', 'offline_credentials', 'payee_keys', 'payees']) await db.schema.dropTable(table).execute()
  await allowKinds(db, ['payer', 'collection', 'issuance'])
}

/** Replaces the accounts' kind check (PostgreSQL named the first one accounts_kind_check). */
async function allowKinds(db: Kysely<any>, kinds: string[]): Promise<void> {
  await db.schema.alterTable('accounts').dropConstraint('accounts_kind_check').execute()
  await db.schema
    .alterTable('accounts')
    .addCheckConstraint('accounts_kind_check', sql`kind in (${sql.join(kinds.map((kind) => sql.lit(kind)))})`)
    .execute()
}
