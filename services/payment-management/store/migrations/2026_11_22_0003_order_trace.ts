// The trace context of each order (traceparent and baggage), continued by every later step.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('orders')
    .addColumn('trace_context', 'text', (c) => c.notNull().defaultTo(''))
    .execute()
}
