// A refund keeps the time the transaction was paid (completed_at) and records its own
// (refunded_at). Rows refunded before this kept only the refund time in completed_at: it moves to
// refunded_at, and completed_at is taken back from the transaction's first ledger entry (the payment).
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('transactions').addColumn('refunded_at', 'timestamptz').execute()
  await db
    .updateTable('transactions as t')
    .set((eb) => ({
      refunded_at: eb.ref('t.completed_at'),
      completed_at: eb.fn.coalesce(
        eb
          .selectFrom('ledger_entries as e')
          .select((inner) => inner.fn.min('e.created_at').as('paid_at'))
          .whereRef('e.platform_id', '=', 't.platform_id')
          .whereRef('e.serial_number', '=', 't.serial_number'),
        eb.ref('t.completed_at'),
      ),
    }))
    .where('t.state', '=', 'refunded')
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.updateTable('transactions').set((eb) => ({ completed_at: eb.ref('refunded_at') })).where('state', '=', 'refunded').execute()
  await db.schema.alterTable('transactions').dropColumn('refunded_at').execute()
}
