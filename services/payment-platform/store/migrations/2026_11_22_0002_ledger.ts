// Accounts (account numbers sealed, looked up by keyed hash), transactions, the double-entry
// ledger, and the outbox of payment notifications to PaymentManagement.
import { type Kysely, sql } from 'kysely'
import { createOutboxTable } from '../../../runtime/outbox.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('accounts')
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('account_ref', 'text', (c) => c.notNull())
    .addColumn('sealed_number', 'bytea', (c) => c.notNull())
    .addColumn('masked_number', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('payer', 'collection', 'issuance')`))
    .addColumn('merchant_id', 'text')
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('balance_minor', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('password_hash', 'text')
    .addColumn('failed_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('locked_until', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('accounts_pk', ['platform_id', 'account_ref'])
    // Only the issuance account (where opening balances come from) may go below zero.
    .addCheckConstraint('accounts_no_overdraft', sql`kind = 'issuance' or balance_minor >= 0`)
    .execute()
  await db.schema
    .createTable('transactions')
    .addColumn('serial_number', 'text', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('pending', 'succeeded', 'cancelled', 'refunded')`))
    .addColumn('amount_minor', 'bigint', (c) => c.notNull().check(sql`amount_minor > 0`))
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('payer_ref', 'text', (c) => c.notNull())
    .addColumn('masked_payer', 'text', (c) => c.notNull())
    .addColumn('collection_ref', 'text', (c) => c.notNull())
    .addColumn('collection_account', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('merchant_order_id', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('completed_at', 'timestamptz')
    .execute()
  await db.schema
    .createTable('ledger_entries')
    .addColumn('entry_id', 'bigserial', (c) => c.primaryKey())
    .addColumn('platform_id', 'text', (c) => c.notNull())
    .addColumn('journal_id', 'text', (c) => c.notNull())
    .addColumn('serial_number', 'text')
    .addColumn('account_ref', 'text', (c) => c.notNull())
    .addColumn('masked_number', 'text', (c) => c.notNull())
    .addColumn('delta_minor', 'bigint', (c) => c.notNull())
    .addColumn('currency_code', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute()
  await db.schema.createIndex('ledger_entries_account').on('ledger_entries').columns(['platform_id', 'account_ref', 'entry_id']).execute()
  await createOutboxTable(db)
}
