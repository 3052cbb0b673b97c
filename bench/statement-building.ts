// What a store statement costs to make before it reaches the database: Kysely building, rewriting
// for the service's schema and compiling it on every call, against a query template
// (services/runtime/query-template.ts) binding the same call's values. No database: a Kysely on
// Kysely's own dummy driver, with the schema plugin the services' views carry.
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql } from 'kysely'
import { performance } from 'node:perf_hooks'
import { queryTemplate } from '../services/runtime/query-template.ts'

interface BenchDatabase {
  logins: { login_id: string; device_id: string; state: string; updated_at: Date; expires_at: Date }
  login_tokens: { token_hash: string; login_id: string; device_id: string; expires_at: Date }
}

const db = new Kysely<BenchDatabase>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
}).withSchema('account_management')

type Values = { loginId: string; deviceId: string; tokenHash: string; now: Date; expiresAt: Date }
/** The shape of a login's redemption: a CTE moving the login, an INSERT ... SELECT from it. */
const redeem = (k: Kysely<BenchDatabase>, v: Values) =>
  k
    .with('moved', (qc) =>
      qc
        .updateTable('logins')
        .set({ state: 'redeemed', updated_at: v.now })
        .where('login_id', '=', v.loginId)
        .where('device_id', '=', v.deviceId)
        .where('state', '=', 'verified')
        .where('expires_at', '>', v.now)
        .returningAll(),
    )
    .insertInto('login_tokens')
    .columns(['token_hash', 'login_id', 'device_id', 'expires_at'])
    .expression((eb) => eb.selectFrom('moved').select([sql<string>`${v.tokenHash}::text`.as('token_hash'), 'login_id', 'device_id', sql<Date>`${v.expiresAt}::timestamptz`.as('expires_at')]))
    .returningAll()
const REDEEM = queryTemplate('bench.redeem', redeem)

function microsPerCall(make: (values: Values) => unknown, calls: number): number {
  const values = (i: number): Values => ({ loginId: `login-${i}`, deviceId: 'dev-1', tokenHash: `hash-${i}`, now: new Date(), expiresAt: new Date() })
  for (let i = 0; i < calls / 10; i++) make(values(i)) // warm-up: optimized code, the template made
  const started = performance.now()
  for (let i = 0; i < calls; i++) make(values(i))
  return ((performance.now() - started) * 1000) / calls
}

export interface StatementBuilding {
  readonly kyselyMicros: number
  readonly templateMicros: number
}

export function statementBuilding(quick: boolean): StatementBuilding {
  const calls = quick ? 5_000 : 20_000
  return {
    kyselyMicros: microsPerCall((v) => redeem(db, v).compile(), calls),
    templateMicros: microsPerCall((v) => REDEEM.compile(db, v), calls),
  }
}
