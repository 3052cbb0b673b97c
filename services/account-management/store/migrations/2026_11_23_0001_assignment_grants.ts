// Every assignment (rental of a device) gets its own id, and what is granted on the device names
// it: logins and login tokens. Releasing or re-renting ends them: logins become 'ended', tokens
// get ended_at. The outbox carries the same end to AppService, InstanceEvents and PaymentManagement.
import { type Kysely, sql } from 'kysely'
import { createOutboxTable } from '../../../runtime/outbox.ts'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('instance_assignments').addColumn('assignment_id', 'text').execute()
  await db
    .updateTable('instance_assignments')
    .set({ assignment_id: sql`gen_random_uuid()::text` })
    .execute()
  await db.schema
    .alterTable('instance_assignments')
    .alterColumn('assignment_id', (c) => c.setNotNull())
    .execute()
  await db.schema.alterTable('instance_assignments').addUniqueConstraint('instance_assignments_assignment_id', ['assignment_id']).execute()
  await db.schema.alterTable('logins').addColumn('assignment_id', 'text').execute()
  await db.schema.alterTable('logins').dropConstraint('logins_state_check').execute()
  await db.schema
    .alterTable('logins')
    .addCheckConstraint('logins_state_check', sql`state in ('pending', 'verified', 'rejected', 'redeemed', 'ended')`)
    .execute()
  await db.schema.alterTable('login_tokens').addColumn('assignment_id', 'text').addColumn('ended_at', 'timestamptz').execute()
  await db.schema.createIndex('login_tokens_device').on('login_tokens').column('device_id').where(sql.ref('consumed_at'), 'is', null).execute()
  await createOutboxTable(db)
}
