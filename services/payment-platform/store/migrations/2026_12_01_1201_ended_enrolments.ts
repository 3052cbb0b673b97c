// A removed terminal's enrolment, as the platform learns it (EndTerminalCredentials): when it
// ended, so the terminal no longer sees the credentials it provisioned before (rental-boundary.ts).
// One row per terminal, kept: the rule holds as long as the credentials do. The index finds a
// terminal's credentials for the removal's hand-off.
import type { Kysely } from 'kysely'

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('ended_enrolments')
    .addColumn('terminal_id', 'text', (c) => c.primaryKey())
    .addColumn('ended_at', 'timestamptz', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('offline_credentials_terminal').on('offline_credentials').columns(['terminal_id', 'created_at']).execute()
}
