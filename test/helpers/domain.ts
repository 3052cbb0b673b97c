// The domain test tier (test/<service>/): a service's business-rule functions against a real
// database with no gRPC. One database per test file, the service's own migrations applied
// (PGlite in process; PostgreSQL when DATABASE_URL is set), and assertions on refusals by their
// ErrorInfo reason, which is what a client switches on.
import assert from 'node:assert/strict'
import { after, before } from 'node:test'
import type { Kysely } from 'kysely'
import { CloudpayError } from '../../services/runtime/errors.ts'
import { OUTBOX_TABLE } from '../../services/runtime/outbox.ts'
import type { Migration } from '../../services/runtime/database.ts'
import { openMigrated } from './database.ts'

export { DATABASE_KIND } from './database.ts'

/**
 * The service's schema on a fresh database for this test file: opened before its first test,
 * dropped after its last. Read `.db` inside tests (it is set once `before` ran).
 */
export function serviceDatabase<Database>(service: { readonly schema: string; readonly migrations: Readonly<Record<string, Migration>> }): { readonly db: Kysely<Database> } {
  let opened: Awaited<ReturnType<typeof openMigrated<Database>>> | undefined
  before(async () => {
    opened = await openMigrated<Database>(service)
  })
  after(async () => opened?.close())
  return {
    get db() {
      if (!opened) throw new Error('serviceDatabase: the database is opened in before(); use .db inside a test')
      return opened.db
    },
  }
}

/** Asserts that `work` is refused with a domain error of this ErrorInfo reason; returns the error. */
export async function refusedWith(work: Promise<unknown> | (() => Promise<unknown>), reason: string): Promise<CloudpayError> {
  let caught: unknown
  try {
    await (typeof work === 'function' ? work() : work)
  } catch (error) {
    caught = error
  }
  assert.ok(caught !== undefined, `expected a refusal with reason ${reason}, but it succeeded`)
  assert.ok(caught instanceof CloudpayError, `expected a domain error with reason ${reason}, got ${String(caught)}`)
  assert.equal(caught.reason, reason, caught.message)
  return caught
}

/** The outbox deliveries a service's transactions queued, by topic (what must reach another party). */
export async function queuedDeliveries(db: Kysely<any>, topic?: string): Promise<{ delivery_id: string; topic: string; payload: Record<string, string> }[]> {
  let query = db.selectFrom(OUTBOX_TABLE).select(['delivery_id', 'topic', 'payload']).orderBy('created_at').orderBy('delivery_id')
  if (topic) query = query.where('topic', '=', topic)
  const rows = await query.execute()
  return rows.map((row: { delivery_id: string; topic: string; payload: unknown }) => ({
    ...row,
    payload: (typeof row.payload === 'string' ? JSON.parse(row.payload) : row.payload) as Record<string, string>,
  }))
}
