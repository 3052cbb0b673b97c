// A transaction's BEGIN travels with its first statement, and its COMMIT with its last where the
// caller asks (`commitsTransaction`): on PostgreSQL each round trip costs a socket write and a
// wake-up of the backend (here ~0.2 ms of the client's CPU); BEGIN was 7 of a login's 37
// statements, and the COMMIT after an idempotent call's stored answer 7 of the 30 left.
// The extended query protocol lets a client send several statements before one Sync: Parse, Bind
// and Execute of BEGIN, the statement's own messages, Parse, Bind and Execute of COMMIT, then the
// Sync, answered in order. After an error the server skips to the Sync: a failing statement leaves
// its transaction open and aborted (never committed), and Kysely rolls it back as it always does;
// a failing COMMIT (a serialization failure, a deferred constraint) has ended the transaction, and
// the ROLLBACK after it finds none. Either is the statement's failure, as if sent apart.
import type { CompiledQuery } from 'kysely'
import pg from 'pg'
import { DROP_STATEMENTS, isStalePlan, PreparedStatements } from './prepared-statements.ts'

/** Ends a statement that commits its transaction in the same round trip; the server reads it as a comment. */
const COMMIT_MARK = ' /* and commit */'

/**
 * The transaction's last statement, marked to carry its COMMIT (on PostgreSQL; elsewhere it runs as
 * it is and the COMMIT follows). Only for a transaction the caller opened itself: nothing may run in
 * it afterwards, and Kysely's own COMMIT after it is then answered without a round trip.
 */
export function commitsTransaction<R>(query: CompiledQuery<R>): CompiledQuery<R> {
  return { ...query, sql: query.sql + COMMIT_MARK }
}

/** pg's Query as this file uses it (its protocol steps are not in pg's published types). */
const PgQuery = pg.Query as unknown as new (
  config: { text: string; values: unknown[]; name?: string; queryMode: 'extended' },
  values: undefined,
  callback: (error: Error | null, result: QueryResult) => void,
) => {
  prepare(connection: PgConnection): void
  _getRows(connection: PgConnection, rows: number | undefined): void
  handleCommandComplete(message: unknown, connection: PgConnection): void
}

/** One statement with its transaction's BEGIN before it, its COMMIT after it, or both, in one round trip. */
class PipelinedQuery extends PgQuery {
  private completions = 0

  constructor(
    statement: { text: string; values: unknown[]; name?: string },
    /** Read by counters that watch `pg` (the benchmark's). */
    readonly beginsTransaction: boolean,
    readonly commitsTransaction: boolean,
    callback: (error: Error | null, result: QueryResult) => void,
  ) {
    // Extended mode even without values: a statement pg would send as a simple query could carry nothing.
    super({ ...statement, queryMode: 'extended' }, undefined, callback)
  }

  override prepare(connection: PgConnection): void {
    if (this.beginsTransaction) sendStatement(connection, 'begin')
    super.prepare(connection)
  }

  /** pg sends the statement's Execute and then its Sync here: COMMIT goes between them. */
  override _getRows(connection: PgConnection, rows: number | undefined): void {
    if (!this.commitsTransaction || rows) return super._getRows(connection, rows)
    connection.execute({ portal: '', rows: 0 })
    sendStatement(connection, 'commit')
    connection.sync()
  }

  /** Hands the statement's result alone to its caller: BEGIN's and COMMIT's CommandComplete are not results. */
  override handleCommandComplete(message: unknown, connection: PgConnection): void {
    const index = this.completions++
    const own = this.beginsTransaction ? 1 : 0
    if (index === own) super.handleCommandComplete(message, connection)
  }
}

function sendStatement(connection: PgConnection, text: string): void {
  connection.parse({ text, name: '', types: [] })
  connection.bind({ portal: '', statement: '', values: [] })
  connection.execute({ portal: '', rows: 0 })
}

interface PgConnection {
  parse(message: { text: string; name: string; types: unknown[] }): void
  bind(message: { portal: string; statement: string; values: unknown[] }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
}

type QueryResult = pg.QueryResult<Record<string, unknown>>
const answered = (command: string): QueryResult => ({ command, rowCount: null, oid: 0, rows: [], fields: [] })

/**
 * Makes a pooled client send `begin` with the statement after it, and `commit` with a statement
 * marked by commitsTransaction. Only Kysely's plain `begin` (text, no values) is held back; a
 * `start transaction isolation level ...` goes as it is. A transaction ended with no statement in
 * it sends nothing at all. Statements run prepared, up to `preparedLimit` per connection
 * (prepared-statements.ts).
 */
export function pipelineTransactions(client: pg.PoolClient, preparedLimit = 0): void {
  const send = client.query.bind(client) as (...args: unknown[]) => unknown
  const prepared = new PreparedStatements((client as unknown as { connection: ConstructorParameters<typeof PreparedStatements>[0] }).connection, preparedLimit)
  /**
   * A named statement. One found stale runs once more with its plans dropped when it ran alone (it
   * did nothing); in a transaction (aborted by it) the connection drops them before the next, and
   * inTransaction retries the whole.
   */
  const sendNamed = (name: string, text: string, values: unknown[], retryAlone: boolean): Promise<unknown> =>
    (send({ name, text, values }) as Promise<unknown>).catch((error: unknown) => {
      if (!isStalePlan(error)) throw error
      if (!retryAlone) {
        prepared.unsure()
        throw error
      }
      return dropStatements().then(() => sendNamed(name, text, values, false))
    })
  const dropStatements = (): Promise<void> => (send(DROP_STATEMENTS) as Promise<unknown>).then(() => prepared.dropped())
  /** A transaction is open on this connection (the mark is honoured only inside one). */
  let open = false
  /** BEGIN is held for the next statement. */
  let held = false
  /** The last statement committed the transaction: Kysely's COMMIT comes next. */
  let committed = false
  const query = (text: unknown, values?: unknown, ...rest: unknown[]): unknown => {
    const plain = typeof text === 'string' && rest.length === 0 && (values === undefined || (Array.isArray(values) && values.length === 0))
    const ends = plain && (text === 'commit' || text === 'rollback')
    if (committed) {
      committed = false
      if (plain && text === 'commit') return Promise.resolve(answered('COMMIT'))
      // Nothing may follow the statement that committed: it would run outside the transaction.
      return Promise.reject(new Error(`a statement was sent after its transaction committed with its last one: ${String(text).slice(0, 40)}`))
    }
    // Between transactions, a connection whose statements are uncertain drops them first (before
    // a call answered by promise: one with a callback or a submittable goes as it is).
    const promised = typeof text === 'string' && rest.length === 0 && (values === undefined || Array.isArray(values))
    if (!open && promised && prepared.mustDrop) return dropStatements().then(() => query(text, values))
    if (plain && text === 'begin' && !held && !open) {
      held = open = true
      return Promise.resolve(answered('BEGIN'))
    }
    const begins = held
    held = false
    if (ends) open = false
    if (begins && ends) return Promise.resolve(answered((text as string).toUpperCase()))
    // Kysely's `start transaction isolation level ...` (no values) opens one too.
    if (plain && /^\s*(begin|start transaction)\b/i.test(text as string)) open = true
    // A marked statement outside a transaction (autocommitted anyway) goes as it is.
    const commits = promised && open && !ends && text.endsWith(COMMIT_MARK)
    if (!begins && !commits) {
      const name = promised ? prepared.nameFor(text as string) : undefined
      if (name === undefined) return send(text, values, ...rest)
      return sendNamed(name, text as string, (values as unknown[] | undefined) ?? [], !open)
    }
    if (!promised) {
      // Not a statement this can carry (a submittable, a callback): BEGIN on its own first.
      return (send('begin') as Promise<unknown>).then(() => send(text, values, ...rest))
    }
    return new Promise<QueryResult>((resolve, reject) => {
      const name = prepared.nameFor(text)
      const parsedBefore = name !== undefined && prepared.holds(name)
      const statement = { text, values: (values as unknown[] | undefined) ?? [], ...(name === undefined ? {} : { name }) }
      send(
        new PipelinedQuery(statement, begins, commits, (error, result) => {
          if (error) {
            if (name !== undefined && (isStalePlan(error) || (begins && !parsedBefore))) prepared.unsure()
            return reject(error) // the transaction is aborted (or ended): Kysely rolls back
          }
          if (commits) {
            open = false
            committed = true
          }
          resolve(result)
        }),
      )
    })
  }
  client.query = query as typeof client.query
}
