// AIP-155 request ids: a mutating RPC's first response is stored under (caller, request_id) in the
// same transaction as its effects; a retry gets that response back, and the same id with other
// parameters is refused. Every service keeps the table in its own schema.
import { createHash } from 'node:crypto'
import { type Generated, type Kysely, sql, type Transaction } from 'kysely'
import { inTransaction } from './database.ts'
import { InvalidArgumentError } from './errors.ts'
import { formatIdentity, type Identity } from './identity.ts'

export const IDEMPOTENCY_TABLE = 'idempotency_keys'

export interface IdempotencyKeysTable {
  caller: string
  request_id: string
  method: string
  request_hash: string
  response: Uint8Array
  created_at: Generated<Date>
}

/** Part of each service's first migration. */
export async function createIdempotencyTable(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable(IDEMPOTENCY_TABLE)
    .addColumn('caller', 'text', (c) => c.notNull())
    .addColumn('request_id', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('response', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['caller', 'request_id'])
    .execute()
  await db.schema.createIndex('idempotency_keys_created_at').on(IDEMPOTENCY_TABLE).column('created_at').execute()
}

/** Encodes and decodes one response type (ts-proto's generated MessageFns fit). */
export interface Codec<T> {
  encode(message: T): { finish(): Uint8Array }
  decode(input: Uint8Array): T
}

export interface IdempotentCall<Req, Res> {
  readonly caller: Identity
  /** "pkg.Service/Method" */
  readonly method: string
  readonly requestId: string
  readonly request: Req
  readonly requestCodec: Codec<Req>
  readonly responseCodec: Codec<Res>
}

/**
 * Runs `work` once per (caller, request id), in one transaction with the stored response. The
 * key row is claimed first: a concurrent duplicate blocks on it until the first commits, then
 * replays the first answer (or, if the first rolled back, runs the work itself).
 */
export async function idempotent<Database, Req, Res>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  work: (trx: Transaction<Database>) => Promise<Res>,
): Promise<Res> {
  const caller = formatIdentity(call.caller)
  const requestHash = createHash('sha256').update(call.requestCodec.encode(call.request).finish()).digest('base64url')
  return inTransaction(db, async (trx) => {
    const keys = trx as unknown as Transaction<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }>
    const claimed = await keys
      .insertInto(IDEMPOTENCY_TABLE)
      .values({ caller, request_id: call.requestId, method: call.method, request_hash: requestHash, response: new Uint8Array() })
      .onConflict((oc) => oc.columns(['caller', 'request_id']).doNothing())
      .returning('caller')
      .executeTakeFirst()
    if (!claimed) {
      const previous = await keys
        .selectFrom(IDEMPOTENCY_TABLE)
        .select(['method', 'request_hash', 'response'])
        .where('caller', '=', caller)
        .where('request_id', '=', call.requestId)
        .executeTakeFirstOrThrow()
      if (previous.method !== call.method || previous.request_hash !== requestHash) {
        throw InvalidArgumentError.field('request_id', 'was already used for a different request; use a new request id', 'REQUEST_ID_REUSED')
      }
      return call.responseCodec.decode(previous.response)
    }
    const response = await work(trx)
    await keys
      .updateTable(IDEMPOTENCY_TABLE)
      .set({ response: call.responseCodec.encode(response).finish() })
      .where('caller', '=', caller)
      .where('request_id', '=', call.requestId)
      .execute()
    return response
  })
}
