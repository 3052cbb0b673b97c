// A transaction's BEGIN travels with its first statement: one round trip instead of two. Kysely
// sends `begin` on its own and waits for it; on PostgreSQL each statement costs a socket write and
// a wake-up of the backend (here ~0.2 ms of the client's CPU), and BEGIN was 7 of a login's 37.
// The extended query protocol lets a client send several statements before one Sync: Parse, Bind
// and Execute of BEGIN, then the statement's own messages and the Sync, answered in order. A
// failure of either is the statement's failure, as if sent apart (BEGIN ran first, so the
// transaction is open and aborted, and Kysely rolls it back as it always does).
import pg from 'pg'

/** pg's Query as this file uses it (its protocol steps are not in pg's published types). */
const PgQuery = pg.Query as unknown as new (
  config: { text: string; values: unknown[]; queryMode: 'extended' },
  values: undefined,
  callback: (error: Error | null, result: QueryResult) => void,
) => { prepare(connection: PgConnection): void; handleCommandComplete(message: unknown, connection: PgConnection): void }

/** Hands the statement's result alone to its caller: BEGIN's own CommandComplete is not a result. */
class BeginThenQuery extends PgQuery {
  /** Marks the statement as opening a transaction (counters that watch `pg` read it). */
  readonly beginsTransaction = true
  private begun = false

  override prepare(connection: PgConnection): void {
    connection.parse({ text: 'begin', name: '', types: [] })
    connection.bind({ portal: '', statement: '', values: [] })
    connection.execute({ portal: '', rows: 0 })
    super.prepare(connection)
  }

  override handleCommandComplete(message: unknown, connection: PgConnection): void {
    if (!this.begun) {
      this.begun = true
      return
    }
    super.handleCommandComplete(message, connection)
  }
}

interface PgConnection {
  parse(message: { text: string; name: string; types: unknown[] }): void
  bind(message: { portal: string; statement: string; values: unknown[] }): void
  execute(message: { portal: string; rows: number }): void
}

type QueryResult = pg.QueryResult<Record<string, unknown>>
const answered = (command: string): QueryResult => ({ command, rowCount: null, oid: 0, rows: [], fields: [] })

/**
 * Makes a pooled client send `begin` with the statement after it. Only Kysely's plain `begin`
 * (text, no values) is held back; a `start transaction isolation level ...` goes as it is. A
 * transaction ended with no statement in it sends nothing at all.
 */
export function pipelineBegin(client: pg.PoolClient): void {
  const send = client.query.bind(client) as (...args: unknown[]) => unknown
  let held = false
  const query = (text: unknown, values?: unknown, ...rest: unknown[]): unknown => {
    const plain = typeof text === 'string' && rest.length === 0 && (values === undefined || (Array.isArray(values) && values.length === 0))
    if (plain && text === 'begin' && !held) {
      held = true
      return Promise.resolve(answered('BEGIN'))
    }
    if (!held) return send(text, values, ...rest)
    held = false
    if (plain && (text === 'commit' || text === 'rollback')) return Promise.resolve(answered(text.toUpperCase()))
    if (typeof text !== 'string' || (values !== undefined && !Array.isArray(values)) || rest.length > 0) {
      // Not a statement this can carry (a submittable, a callback): BEGIN on its own first.
      return (send('begin') as Promise<unknown>).then(() => send(text, values, ...rest))
    }
    return new Promise<QueryResult>((resolve, reject) => {
      // Extended mode even without values: a statement pg would send as a simple query could not carry BEGIN.
      const statement = { text, values: (values as unknown[] | undefined) ?? [], queryMode: 'extended' as const }
      send(new BeginThenQuery(statement, undefined, (error: Error | null, result: QueryResult) => (error ? reject(error) : resolve(result))))
    })
  }
  client.query = query as typeof client.query
}
