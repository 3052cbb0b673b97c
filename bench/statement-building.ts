// What a store statement costs to make before it reaches the database: Kysely building, rewriting
// for the service's schema and compiling it on every call, against a query template
// (services/runtime/query-template.ts) binding the same call's values. The statement is a login's
// redemption as AccountManagement runs it (a CTE moving the login under its current rental, an
// INSERT ... SELECT of the token from it). No database: a Kysely on Kysely's own dummy driver,
// with the schema plugin the services' views carry.
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely'
import { performance } from 'node:perf_hooks'
import { redeemLoginStatement } from '../services/account-management/store/repository.ts'
import type { AccountDatabase } from '../services/account-management/store/tables.ts'
import { queryTemplate } from '../services/runtime/query-template.ts'

const db = new Kysely<AccountDatabase>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
}).withSchema('account_management')

type Values = Parameters<typeof redeemLoginStatement>[1]
const REDEEM = queryTemplate('bench.redeemLogin', redeemLoginStatement)

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
    kyselyMicros: microsPerCall((v) => redeemLoginStatement(db, v).compile(), calls),
    templateMicros: microsPerCall((v) => REDEEM.compile(db, v), calls),
  }
}
