// A store's statement built and compiled once per schema, then run with each call's values.
//
// Kysely builds a statement's tree, freezes it, rewrites it for the service's schema and compiles
// it on every call: a fifth of a service's JavaScript time under load (sampled with perf in the
// production shape), for SQL text that never changes between calls. A template runs its builder
// once per schema with placeholders for its values, keeps the SQL and where each value goes, and
// after that only binds values.
//
// The builder must build one shape whatever the values: values go into the statement as bound
// parameters only, never into a branch, a list (`in`) or a literal. Building refuses a value that
// does not end up bound, and `CLOUDPAY_CHECK_QUERY_TEMPLATES=1` (set by `npm test`) also builds
// every call's statement the ordinary way and refuses any difference from the template's.
import { isDeepStrictEqual } from 'node:util'
import type { Compilable, CompiledQuery, Kysely } from 'kysely'

/** Stands for one named value while the template is built. */
class Placeholder {
  constructor(readonly name: string) {}
}

type Slot = { readonly value: string } | { readonly constant: unknown }

interface Template {
  readonly compiled: CompiledQuery<unknown>
  readonly slots: readonly Slot[]
}

const CHECK = process.env.CLOUDPAY_CHECK_QUERY_TEMPLATES === '1'

const isExpression = (value: unknown): boolean => typeof value === 'object' && value !== null && typeof (value as { toOperationNode?: unknown }).toOperationNode === 'function'

export interface QueryTemplate<DB, V, O> {
  /** The statement with these values, for `db`'s schema. */
  compile(db: Kysely<DB>, values: V): CompiledQuery<O>
  rows(db: Kysely<DB>, values: V): Promise<O[]>
  first(db: Kysely<DB>, values: V): Promise<O | undefined>
  /** How many rows an insert, update or delete changed. */
  affected(db: Kysely<DB>, values: V): Promise<bigint>
}

/**
 * A statement whose shape is fixed: `build` receives the values it binds (placeholders while the
 * template is made). Declare templates at module level, so a builder can close over constants only.
 */
export function queryTemplate<DB, V extends object, O>(label: string, build: (db: Kysely<DB>, values: V) => Compilable<O>): QueryTemplate<DB, V, O> {
  // One template per schema view (its WithSchemaPlugin), or per dialect for a view without one;
  // a transaction shares its Kysely's plugin instances.
  const templates = new WeakMap<object, Template>()

  const make = (db: Kysely<DB>): Template => {
    const used = new Set<string>()
    const placeholders = new Proxy({} as V, {
      get: (_target, name) => {
        if (typeof name !== 'string') return undefined
        used.add(name)
        return new Placeholder(name)
      },
    })
    let compiled: CompiledQuery<unknown>
    try {
      compiled = build(db, placeholders).compile() as CompiledQuery<unknown>
    } catch (error) {
      // Kysely refuses a placeholder where it needs the value itself (a literal).
      throw new Error(`query template ${label}: cannot be built with its values as parameters: ${(error as Error).message}`, { cause: error })
    }
    const slots = compiled.parameters.map((p): Slot => (p instanceof Placeholder ? { value: p.name } : { constant: p }))
    for (const name of used) {
      if (!slots.some((s) => 'value' in s && s.value === name)) {
        throw new Error(`query template ${label}: values.${name} is not a bound parameter (a branch, a list or a literal); build one template per shape`)
      }
    }
    return { compiled, slots }
  }

  const compile = (db: Kysely<DB>, values: V): CompiledQuery<O> => {
    const executor = db.getExecutor()
    const plugins = executor.plugins
    const key = plugins.length === 1 ? plugins[0]! : plugins.length === 0 ? executor.adapter : undefined
    if (key === undefined) return build(db, values).compile()
    let template = templates.get(key)
    if (!template) templates.set(key, (template = make(db)))
    const parameters = template.slots.map((slot) => {
      if ('constant' in slot) return slot.constant
      const value = (values as Record<string, unknown>)[slot.value]
      // Kysely leaves a column out for an undefined value; a template cannot, so it refuses one.
      if (value === undefined) throw new TypeError(`query template ${label}: values.${slot.value} is undefined (pass null for NULL)`)
      // An expression (sql`now()`) where the template has a parameter would be sent as a value.
      if (isExpression(value)) throw new TypeError(`query template ${label}: values.${slot.value} is an SQL expression, not a value`)
      return value
    })
    const bound = { ...template.compiled, parameters } as CompiledQuery<O>
    if (CHECK) {
      const fresh = build(db, values).compile()
      if (fresh.sql !== bound.sql || !isDeepStrictEqual(fresh.parameters, bound.parameters)) {
        throw new Error(`query template ${label}: the statement built for these values differs from the template's:\n${fresh.sql}\n${bound.sql}`)
      }
    }
    return bound
  }

  return {
    compile,
    rows: async (db, values) => (await db.executeQuery(compile(db, values))).rows,
    first: async (db, values) => (await db.executeQuery(compile(db, values))).rows[0],
    affected: async (db, values) => (await db.executeQuery(compile(db, values))).numAffectedRows ?? 0n,
  }
}
