// What the retention purge (runtime/retention.ts) looks rows up by: expired sessions and
// ended-assignment tombstones.
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('app_sessions_expires_at').on('app_sessions').column('expires_at').execute()
  await db.schema.createIndex('device_assignments_ended_at').on('device_assignments').column('ended_at').where(sql.ref('ended_at'), 'is not', null).execute()
}
