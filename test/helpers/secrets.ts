// Searches everywhere a secret could leak: every row of every table in every schema, every log
// line, every exported span (attributes, events, status), every stored event.
import { sql } from 'kysely'
import type { TestMesh } from './mesh.ts'

export async function findSecret(t: TestMesh, secret: string): Promise<string[]> {
  const found: string[] = []
  const db = t.mesh.database.db
  const tables = await sql<{ table_schema: string; table_name: string }>`
    select table_schema, table_name from information_schema.tables
    where table_schema not in ('pg_catalog', 'information_schema') and table_type = 'BASE TABLE'`.execute(db)
  for (const { table_schema, table_name } of tables.rows) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(`${table_schema}.${table_name}`)} t`.execute(db)
    for (const { row } of rows.rows) {
      if (row.includes(secret)) found.push(`table ${table_schema}.${table_name}: ${row.slice(0, 120)}`)
      // bytea columns print as hex: look for the secret's hex too.
      if (row.includes(Buffer.from(secret).toString('hex'))) found.push(`table ${table_schema}.${table_name} (hex)`)
    }
  }
  for (const line of t.logLines) if (line.includes(secret)) found.push(`log: ${line.slice(0, 120)}`)
  await t.telemetry.forceFlush()
  for (const span of t.spans.getFinishedSpans()) {
    const text = JSON.stringify({ name: span.name, attributes: span.attributes, events: span.events, status: span.status, links: span.links })
    if (text.includes(secret)) found.push(`span ${span.name}`)
  }
  return found
}
