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
//
// A statement whose answer nothing in the transaction waits for (an outbox row: only the commit
// hook reads whether it was inserted) rides along (`ridesAlong`): it is held, and sent in the
// round trip of the transaction's next statement, or of its COMMIT, just before it. Its count of
// rows changed arrives with that round trip (`changedByRider`). A rider that fails makes the
// statement it rides with fail (the server skips to the Sync): the transaction is aborted and
// rolled back, with the rider's error. A transaction rolled back sends its riders nowhere.
import { context, trace } from '@opentelemetry/api'
import type { CompiledQuery, QueryResult as KyselyResult } from 'kysely'
import pg from 'pg'
import pgUtils from 'pg/lib/utils.js'
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

/** Ends a statement that may wait for the transaction's next round trip; the server reads it as a comment. */
const RIDE_MARK = ' /* rides along */'

/**
 * Marks a statement that returns no rows and whose answer nothing before the transaction's end
 * needs: on PostgreSQL, in a transaction, it is sent with the next statement (one round trip
 * fewer); elsewhere it runs as it is. Read its outcome with changedByRider.
 */
export function ridesAlong<R>(query: CompiledQuery<R>): CompiledQuery<R> {
  if (/\breturning\b/i.test(query.sql)) throw new Error(`a statement that rides along returns no rows: ${query.sql.slice(0, 60)}`)
  return { ...query, sql: query.sql + RIDE_MARK }
}

/** Where a held rider's result carries the count that its round trip brings. */
const RIDER_OUTCOME = Symbol('rider outcome')

/**
 * How many rows a statement marked by ridesAlong changed. For a held one, this settles when the
 * round trip it rode in is answered (before the transaction's commit is); a transaction rolled
 * back before sending it settles it at 0.
 */
export function changedByRider(result: KyselyResult<unknown>): Promise<bigint> {
  const held = (result.rows[0] as { [RIDER_OUTCOME]?: Promise<bigint> } | undefined)?.[RIDER_OUTCOME]
  return held ?? Promise.resolve(result.numAffectedRows ?? 0n)
}

/** Round trips to PostgreSQL for traced work (tests count them per flow). */
export const pipelineCounters = { roundTrips: 0 }

interface Rider {
  readonly text: string
  readonly values: unknown[]
  settle(changed: bigint): void
  fail(error: unknown): void
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
  handleError(error: unknown, connection: PgConnection): void
}

/**
 * One statement with its transaction's BEGIN before it, riders before it, its COMMIT after it, or
 * any of these, in one round trip.
 */
class PipelinedQuery extends PgQuery {
  private completions = 0
  /** Read by counters that watch `pg` (the benchmark's, the tests'). */
  readonly riders: number

  constructor(
    statement: { text: string; values: unknown[]; name?: string },
    /** Read by counters that watch `pg` (the benchmark's). */
    readonly beginsTransaction: boolean,
    readonly commitsTransaction: boolean,
    private readonly carried: readonly Rider[],
    callback: (error: Error | null, result: QueryResult) => void,
  ) {
    // Extended mode even without values: a statement pg would send as a simple query could carry nothing.
    super({ ...statement, queryMode: 'extended' }, undefined, callback)
    this.riders = carried.length
  }

  override prepare(connection: PgConnection): void {
    if (this.beginsTransaction) sendStatement(connection, 'begin')
    for (const rider of this.carried) sendStatement(connection, rider.text, rider.values)
    super.prepare(connection)
  }

  /** pg sends the statement's Execute and then its Sync here: COMMIT goes between them. */
  override _getRows(connection: PgConnection, rows: number | undefined): void {
    if (!this.commitsTransaction || rows) return super._getRows(connection, rows)
    connection.execute({ portal: '', rows: 0 })
    sendStatement(connection, 'commit')
    connection.sync()
  }

  /**
   * Hands the statement's result alone to its caller: BEGIN's and COMMIT's CommandComplete are not
   * results, and a rider's settles its own count.
   */
  override handleCommandComplete(message: unknown, connection: PgConnection): void {
    const index = this.completions++
    const first = this.beginsTransaction ? 1 : 0
    const own = first + this.carried.length
    if (index === own) super.handleCommandComplete(message, connection)
    else if (index >= first && index < own) this.carried[index - first]!.settle(changedRows(message))
  }

  /** The riders not answered yet fail with the statement: the server skipped them, or one of them failed. */
  override handleError(error: unknown, connection: PgConnection): void {
    for (const rider of this.carried.slice(Math.max(0, this.completions - (this.beginsTransaction ? 1 : 0)))) rider.fail(error)
    super.handleError(error, connection)
  }
}

/** The row count of a CommandComplete ("INSERT 0 1", "UPDATE 2"). */
const changedRows = (message: unknown): bigint => {
  const count = /(\d+)$/.exec((message as { text?: string }).text ?? '')
  return count ? BigInt(count[1]!) : 0n
}

function sendStatement(connection: PgConnection, text: string, values: unknown[] = []): void {
  connection.parse({ text, name: '', types: [] })
  connection.bind({ portal: '', statement: '', values, valueMapper: pgUtils.prepareValue })
  connection.execute({ portal: '', rows: 0 })
}

interface PgConnection {
  parse(message: { text: string; name: string; types: unknown[] }): void
  bind(message: { portal: string; statement: string; values: unknown[]; valueMapper?: (value: unknown) => unknown }): void
  execute(message: { portal: string; rows: number }): void
  sync(): void
}

type QueryResult = pg.QueryResult<Record<string, unknown>>
const answered = (command: string): QueryResult => ({ command, rowCount: null, oid: 0, rows: [], fields: [] })

/**
 * Makes a pooled client send `begin` with the statement after it, `commit` with a statement
 * marked by commitsTransaction, and statements marked by ridesAlong with the one after them. Only
 * Kysely's plain `begin` (text, no values) is held back; a `start transaction isolation level ...`
 * goes as it is. A transaction ended with no statement in it sends nothing at all. Statements run
 * prepared, up to `preparedLimit` per connection (prepared-statements.ts).
 */
export function pipelineTransactions(client: pg.PoolClient, preparedLimit = 0): void {
  const sendNow = client.query.bind(client) as (...args: unknown[]) => unknown
  const send = (...args: unknown[]): unknown => {
    if (trace.getSpan(context.active())) pipelineCounters.roundTrips++
    return sendNow(...args)
  }
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
  /** A transaction is open on this connection (the marks are honoured only inside one). */
  let open = false
  /** BEGIN is held for the next statement. */
  let held = false
  /** The last statement committed the transaction: Kysely's COMMIT comes next. */
  let committed = false
  /** Statements riding along, held for the transaction's next round trip. */
  let riders: Rider[] = []
  const hold = (text: string, values: unknown[]): QueryResult => {
    let settle!: (changed: bigint) => void
    let fail!: (error: unknown) => void
    const outcome = new Promise<bigint>((resolve, reject) => {
      settle = resolve
      fail = reject
    })
    outcome.catch(() => undefined) // its failure is the carrying statement's, reported there
    riders.push({ text, values, settle, fail })
    return { ...answered('RIDER'), rows: [{ [RIDER_OUTCOME]: outcome }] as unknown as Record<string, unknown>[] }
  }
  /** Riders sent on their own, before a statement that cannot carry them. */
  const sendApart = (carried: readonly Rider[]): Promise<unknown> =>
    carried.reduce<Promise<unknown>>(
      (before, rider) =>
        before.then(() =>
          (send(rider.text, rider.values) as Promise<QueryResult>).then(
            (result) => rider.settle(BigInt(result.rowCount ?? 0)),
            (error: unknown) => {
              rider.fail(error)
              throw error
            },
          ),
        ),
      Promise.resolve(),
    )
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
    // Held for the transaction's next round trip (outside a transaction, a marked statement goes as it is).
    if (promised && open && !ends && text.endsWith(RIDE_MARK)) return Promise.resolve(hold(text, (values as unknown[] | undefined) ?? []))
    const begins = held
    held = false
    const carried = riders
    riders = []
    if (plain && text === 'rollback') {
      for (const rider of carried.splice(0)) rider.settle(0n) // never sent
    }
    if (ends) open = false
    if (begins && ends && carried.length === 0) return Promise.resolve(answered((text as string).toUpperCase()))
    // Kysely's `start transaction isolation level ...` (no values) opens one too.
    if (plain && /^\s*(begin|start transaction)\b/i.test(text as string)) open = true
    // A marked statement outside a transaction (autocommitted anyway) goes as it is.
    const commits = promised && open && !ends && text.endsWith(COMMIT_MARK)
    if (!begins && !commits && carried.length === 0) {
      const name = promised ? prepared.nameFor(text as string) : undefined
      if (name === undefined) return send(text, values, ...rest)
      return sendNamed(name, text as string, (values as unknown[] | undefined) ?? [], !open)
    }
    if (!promised) {
      // Not a statement this can carry (a submittable, a callback): BEGIN and riders on their own first.
      return (begins ? (send('begin') as Promise<unknown>) : Promise.resolve()).then(() => sendApart(carried)).then(() => send(text, values, ...rest))
    }
    return new Promise<QueryResult>((resolve, reject) => {
      const name = ends ? undefined : prepared.nameFor(text)
      const parsedBefore = name !== undefined && prepared.holds(name)
      const statement = { text, values: (values as unknown[] | undefined) ?? [], ...(name === undefined ? {} : { name }) }
      send(
        new PipelinedQuery(statement, begins, commits, carried, (error, result) => {
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
