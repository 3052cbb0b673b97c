// SQL of the push_relay schema. Functions take the database or a transaction.
import type { Kysely, Selectable } from 'kysely'
import type { PushRelayDatabase, WakesTable } from './tables.ts'

type Db = Kysely<PushRelayDatabase>
export type WakeRow = Selectable<WakesTable>

export async function insertWake(db: Db, wake: { terminalId: string; kind: string; subjectId: string; requestedBy: string }): Promise<WakeRow> {
  return db
    .insertInto('wakes')
    .values({ terminal_id: wake.terminalId, kind: wake.kind, subject_id: wake.subjectId, requested_by: wake.requestedBy })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** Wakes (of one terminal, when given), newest first, with `seq` below `beforeSeq`. */
export async function listWakes(db: Db, terminalId: string, beforeSeq: bigint | undefined, limit: number): Promise<WakeRow[]> {
  let query = db.selectFrom('wakes').selectAll().orderBy('seq', 'desc').limit(limit)
  if (terminalId) query = query.where('terminal_id', '=', terminalId)
  if (beforeSeq !== undefined) query = query.where('seq', '<', beforeSeq)
  return query.execute()
}

/** Recorded wakes made before `before` (bounded, SKIP LOCKED): the development relay's log is not kept forever. */
export async function deleteWakesBefore(db: Kysely<PushRelayDatabase>, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('wakes')
    .where('seq', 'in', (eb) => eb.selectFrom('wakes').select('seq').where('created_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
