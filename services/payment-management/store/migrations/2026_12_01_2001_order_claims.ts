// Claims of pushed orders (DESIGN "The account's terminals"): which enrolled terminal claimed an
// order, by which gesture (for audit), and when; a removed terminal's claims are found by it.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('orders')
    .addColumn('claimed_by', 'text')
    .addColumn('claim_gesture', 'text', (c) => c.check(sql`claim_gesture in ('tap', 'slide', 'lift')`))
    .addColumn('claimed_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('orders_claimed_by').on('orders').columns(['claimed_by', 'claimed_at']).where(sql.ref('claimed_by'), 'is not', null).execute()
}
