// Connection channels between instances (device ids) and terminals.
import { type Kysely, sql } from 'kysely'
import { createIdempotencyTable } from '../../../runtime/idempotency.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('channels')
    .addColumn('seq', 'bigserial', (c) => c.notNull().unique())
    .addColumn('channel_id', 'text', (c) => c.primaryKey())
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('terminal_id', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('open', 'closed')`))
    .addColumn('opened_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('closed_at', 'timestamptz')
    .execute()
  // At most one open channel per instance/terminal pair.
  await db.schema.createIndex('channels_open_pair').on('channels').columns(['device_id', 'terminal_id']).unique().where(sql.ref('state'), '=', 'open').execute()
  await db.schema.createIndex('channels_terminal').on('channels').columns(['terminal_id', 'seq']).execute()
  await db.schema.createIndex('channels_device').on('channels').columns(['device_id', 'seq']).execute()
  await createIdempotencyTable(db)
}
