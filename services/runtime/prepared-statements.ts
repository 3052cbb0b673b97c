// Each pooled PostgreSQL connection keeps the statements it runs prepared, by name: the server then
// parses and plans a statement once per connection instead of on every call (planning was a third
// of PostgreSQL's time in an order's statements, 68-150 µs each, measured with pg_stat_statements),
// and after five runs it may keep a generic plan and plan nothing at all. The name is a digest of the
// statement's text, so one text always has one name. What can go wrong, and what is done:
// - A migration by another replica changes what `select *` returns: the server refuses the old plan
//   ("cached plan must not change result type", 0A000). The connection drops its statements and the
//   statement runs again (on its own; in a transaction inTransaction retries the whole of it).
// - A statement parsed for the first time with its transaction's BEGIN before it, which fails: pg
//   took BEGIN's ParseComplete for the statement's, so whether the server holds it is unknown. The
//   connection drops its statements before its next transaction. (Alone, pg's record is exact.)
// - A pooler that cannot keep them (PgBouncer in transaction mode before 1.21): set
//   CLOUDPAY_DB_PREPARED_STATEMENTS=0.
import { createHash } from 'node:crypto'
import { remembered } from './remembered.ts'

/** What the server refuses when a prepared statement's result columns changed under it. */
export function isStalePlan(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  return code === '0A000' && typeof message === 'string' && message.includes('cached plan must not change result type')
}

/** What makes the server forget every statement this connection prepared. */
export const DROP_STATEMENTS = 'deallocate all'

/** Statements worth keeping: queries and data changes, never DDL or transaction control. */
const PREPARABLE = /^\s*(select|insert|update|delete|with)\b/i

const nameOf = remembered(2_000, (text: string) => `cp_${createHash('sha1').update(text).digest('hex')}`)

/** pg's record of the statements a connection has parsed (pg-protocol Connection). */
interface ParsedStatements {
  parsedStatements: Record<string, string>
  submittedNamedStatements: Record<string, string>
}

export class PreparedStatements {
  private kept = 0
  private uncertain = false

  constructor(
    private readonly connection: ParsedStatements,
    /** Statements kept per connection at most; past it, statements go unnamed. 0: none. */
    private readonly limit: number,
  ) {}

  /** The name to run `text` under on this connection, or undefined to run it unnamed. */
  nameFor(text: string): string | undefined {
    if (this.limit === 0 || !PREPARABLE.test(text)) return undefined
    const name = nameOf(text)
    if (this.holds(name)) return name
    if (this.kept >= this.limit) return undefined
    this.kept++
    return name
  }

  /** Whether this connection has parsed (or is parsing) the statement named `name`. */
  holds(name: string): boolean {
    return this.connection.parsedStatements[name] !== undefined || this.connection.submittedNamedStatements[name] !== undefined
  }

  /** The server's set of this connection's statements is no longer known, or holds a stale plan. */
  unsure(): void {
    this.uncertain = true
  }

  /** Whether the connection must send DROP_STATEMENTS before its next transaction. */
  get mustDrop(): boolean {
    return this.uncertain
  }

  /** The server dropped them all (DROP_STATEMENTS answered). */
  dropped(): void {
    this.connection.parsedStatements = {}
    this.connection.submittedNamedStatements = {}
    this.kept = 0
    this.uncertain = false
  }
}
