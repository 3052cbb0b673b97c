// Sessions and orders name the assignment (rental of the device) their login token was granted
// under; an ended assignment is remembered, so nothing is opened for it afterwards.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('app_sessions')
    .addColumn('assignment_id', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('ended_at', 'timestamptz')
    .execute()
  await db.schema.createIndex('app_sessions_device_assignment').on('app_sessions').columns(['device_id', 'assignment_id']).execute()
  await db.schema
    .alterTable('app_orders')
    .addColumn('assignment_id', 'text', (c) => c.notNull().defaultTo(''))
    .execute()
  await db.schema.createIndex('app_orders_device_assignment').on('app_orders').columns(['device_id', 'assignment_id', 'state']).execute()
  await db.schema
    .createTable('device_assignments')
    .addColumn('device_id', 'text', (c) => c.notNull())
    .addColumn('assignment_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('ended_at', 'timestamptz')
    .addPrimaryKeyConstraint('device_assignments_pk', ['device_id', 'assignment_id'])
    .execute()
}
