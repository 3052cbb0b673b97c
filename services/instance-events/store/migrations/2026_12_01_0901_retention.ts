// What the retention purge (runtime/retention.ts) looks rows up by: closed channels (expired
// events already have events_created_at).
import { type Kysely, sql } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex('channels_closed_at').on('channels').column('closed_at').where(sql.ref('state'), '=', 'closed').execute()
}
