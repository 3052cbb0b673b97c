// A span per database query, for every dialect alike: the query's statement (parameters are
// placeholders, so no values and no secrets) under the span of the service doing the work.
import { context, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api'
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult } from 'kysely'
import { remembered } from './remembered.ts'
import { SERVICE_TRACER } from './telemetry.ts'

/**
 * Transactions the database committed for traced work of this process (benchmarks count them per
 * flow): explicit transactions, and statements outside one (each its own transaction). Work with
 * no active span (background timers: the Notify safety net, periodic outbox polls) is not counted.
 */
export const databaseCounters = { transactions: 0, statementsOutsideTransactions: 0 }
const inTransaction = new WeakSet<DatabaseConnection>()

interface QueryShape {
  readonly name: string
  readonly attributes: Readonly<Record<string, string>>
}

/** Span name and attributes per statement text: a service runs a few hundred distinct ones, each thousands of times. */
const shapeOf = remembered(2_000, (sql: string): QueryShape => {
  const operation = sql.trimStart().split(/\s/, 1)[0]!.toLowerCase()
  return { name: `db ${operation}`, attributes: { 'db.system.name': 'postgresql', 'db.query.text': sql.slice(0, 2000), 'db.operation.name': operation } }
})

function tracedConnection(connection: DatabaseConnection): DatabaseConnection {
  return {
    executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      const active = context.active()
      if (!inTransaction.has(connection) && trace.getSpan(active)) databaseCounters.statementsOutsideTransactions++
      const tracer = active.getValue(SERVICE_TRACER) as Tracer | undefined
      if (!tracer) return connection.executeQuery<R>(query)
      const shape = shapeOf(query.sql)
      // Not made active: nothing runs inside a query, so no context switch per statement.
      const span = tracer.startSpan(shape.name, { kind: SpanKind.CLIENT, attributes: shape.attributes }, active)
      return connection.executeQuery<R>(query).then(
        (result) => {
          span.end()
          return result
        },
        (error: unknown) => {
          span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message })
          span.end()
          throw error
        },
      )
    },
    streamQuery: connection.streamQuery.bind(connection),
  }
}

/** Wraps a dialect so each query gets a span (begin/commit included). */
export function tracedDialect(dialect: Dialect): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: (): Driver => {
      const driver = dialect.createDriver()
      const wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>()
      const wrap = (connection: DatabaseConnection): DatabaseConnection => {
        let traced = wrapped.get(connection)
        if (!traced) wrapped.set(connection, (traced = tracedConnection(connection)))
        return traced
      }
      const unwrap = new WeakMap<DatabaseConnection, DatabaseConnection>()
      return {
        init: () => driver.init(),
        acquireConnection: async () => {
          const connection = await driver.acquireConnection()
          const traced = wrap(connection)
          unwrap.set(traced, connection)
          return traced
        },
        beginTransaction: async (c, settings) => {
          if (trace.getSpan(context.active())) databaseCounters.transactions++
          inTransaction.add(unwrap.get(c) ?? c)
          await driver.beginTransaction(unwrap.get(c) ?? c, settings)
        },
        commitTransaction: async (c) => {
          inTransaction.delete(unwrap.get(c) ?? c)
          await driver.commitTransaction(unwrap.get(c) ?? c)
        },
        rollbackTransaction: async (c) => {
          inTransaction.delete(unwrap.get(c) ?? c)
          await driver.rollbackTransaction(unwrap.get(c) ?? c)
        },
        releaseConnection: (c) => driver.releaseConnection(unwrap.get(c) ?? c),
        savepoint: driver.savepoint ? (c, name, compile) => driver.savepoint!(unwrap.get(c) ?? c, name, compile) : undefined,
        rollbackToSavepoint: driver.rollbackToSavepoint ? (c, name, compile) => driver.rollbackToSavepoint!(unwrap.get(c) ?? c, name, compile) : undefined,
        releaseSavepoint: driver.releaseSavepoint ? (c, name, compile) => driver.releaseSavepoint!(unwrap.get(c) ?? c, name, compile) : undefined,
        destroy: () => driver.destroy(),
      }
    },
  }
}
