// Preloaded into each service process by the production-shape benchmark (node --import this-file),
// never by the services themselves: counts the RPCs the process serves and the transactions it
// commits, and answers the benchmark's 'counters' message over the IPC channel. Plain JavaScript so
// that it preloads the same way into `node --import tsx` and into a compiled `node dist/...`.
//
// Both libraries are CommonJS, so this file and the services share one instance of each: patching
// the prototypes here is seen by every server and pool the service creates.
import grpc from '@grpc/grpc-js'
import pg from 'pg'
import { context, trace } from '@opentelemetry/api'

const counters = {
  /** Calls that reached a handler (unary and streaming, internal peer calls included). */
  rpcs: 0,
  /** Transactions committed for traced work: COMMITs, and statements outside BEGIN..COMMIT. */
  commits: 0,
  /** The same, background work (no active span: safety-net polls, periodic outbox sweeps) included. */
  allCommits: 0,
  rollbacks: 0,
  /** Statements sent for traced work (BEGIN and COMMIT included): each is a round trip to the database. */
  statements: 0,
}

const addService = grpc.Server.prototype.addService
grpc.Server.prototype.addService = function (service, implementation) {
  const counted = {}
  for (const [name, handler] of Object.entries(implementation)) {
    counted[name] =
      typeof handler === 'function'
        ? function (...args) {
            counters.rpcs++
            return handler.apply(this, args)
          }
        : handler
  }
  return addService.call(this, service, counted)
}

const inTransaction = new WeakSet()
const query = pg.Client.prototype.query
pg.Client.prototype.query = function (config, ...rest) {
  const text = (typeof config === 'string' ? config : (config?.text ?? '')).trimStart().slice(0, 8).toLowerCase()
  const traced = trace.getSpan(context.active()) !== undefined
  if (traced) counters.statements++
  // A statement may carry its transaction's BEGIN, its COMMIT or both (services/runtime/pipelined-transaction.ts).
  if (config?.commitsTransaction === true) {
    inTransaction.delete(this)
    counters.allCommits++
    if (traced) counters.commits++
  } else if (text.startsWith('begin') || config?.beginsTransaction === true) inTransaction.add(this)
  else if (text.startsWith('commit')) {
    inTransaction.delete(this)
    counters.allCommits++
    if (traced) counters.commits++
  } else if (text.startsWith('rollback')) {
    inTransaction.delete(this)
    counters.rollbacks++
  } else if (!inTransaction.has(this)) {
    counters.allCommits++
    if (traced) counters.commits++
  }
  return query.call(this, config, ...rest)
}

process.on('message', (message) => {
  if (message === 'counters') process.send?.({ counters })
})
