// AIP-155 request ids: a mutating RPC's first response is stored under (caller, request_id) in the
// same transaction as its effects; a retry gets that response back, and the same id with other
// parameters is refused. Every service keeps the table in its own schema.
//
// A retry gets the first answer whatever state checks it runs first: a duplicate arriving while
// the first call is in flight in this process waits for it (bounded by its own deadline) instead
// of running its own checks, and a call refused on purpose (a CloudpayError refusal: "already
// paid", "login already verified"...) looks again for an answer stored meanwhile under its
// request id (by another replica, whose effects and answer commit together) and returns that.
//
// Stored responses can carry bearer secrets (a login token, a session token), so the table holds
// neither the request id nor the response in clear: the row is keyed by a hash of the request id
// and the response is sealed (AES-256-GCM) with a key derived from it under the data key. The
// request's fingerprint is a MAC under the data key too, over the request with its secret fields
// blanked (secrets.ts): a dump of the table cannot confirm a guessed account number offline.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { type AliasedExpression, type Compilable, type Expression, type ExpressionBuilder, type Generated, type Kysely, sql, type Transaction } from 'kysely'
import { inTransaction, isUniqueViolation, originOf } from './database.ts'
import { commitsTransaction } from './pipelined-transaction.ts'
import { status as Status } from '@grpc/grpc-js'
import { AbortedError, CloudpayError, InvalidArgumentError } from './errors.ts'
import { formatIdentity, type Identity } from './identity.ts'
import type { Fingerprinter } from './sealing.ts'
import { queryTemplate } from './query-template.ts'
import { withoutSecrets } from './secrets.ts'
import { boundaryOf } from './rental-boundary.ts'

export const IDEMPOTENCY_TABLE = 'idempotency_keys'

export interface IdempotencyKeysTable {
  caller: string
  /** SHA-256 of the request id (hex). */
  request_id: string
  method: string
  /** HMAC (data key) of the encoded request, secrets blanked. */
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
  readonly fingerprints: Fingerprinter
  /** The call's own cancellation (its client gone, its deadline passed): bounds how long it waits for a duplicate in flight. */
  readonly signal?: AbortSignal
}

/**
 * The idempotency key of a handler's call: caller, method and request id, with the codecs that
 * fingerprint the request and store the response. Secret fields never enter the fingerprint.
 */
export function callOf<Req extends { requestId: string }, Res>(
  ctx: { readonly caller: Identity; readonly method: string; readonly fingerprints: Fingerprinter; readonly signal?: AbortSignal },
  request: Req,
  requestCodec: Codec<Req>,
  responseCodec: Codec<Res>,
): IdempotentCall<Req, Res> {
  return {
    caller: ctx.caller,
    method: ctx.method,
    requestId: request.requestId,
    request: withoutSecrets(request),
    requestCodec,
    responseCodec,
    fingerprints: ctx.fingerprints,
    signal: ctx.signal,
  }
}

interface KeyMaterial {
  readonly caller: string
  readonly keyId: string
  readonly key: Buffer
  readonly requestHash: string
  /**
   * Where the caller's current rental or enrolment began (rental-boundary.ts): an answer stored
   * before it is an earlier renter's, never replayed, and the request id is free again.
   */
  readonly since?: (eb: ExpressionBuilder<any, any>) => Expression<unknown>
}

/** The stored row is of the caller's current rental or enrolment (or the rule does not bound the caller). */
const ofCurrentBoundary = (material: Pick<KeyMaterial, 'since'>) => (eb: ExpressionBuilder<any, any>) =>
  material.since ? sql<boolean>`coalesce(${sql.ref(`${IDEMPOTENCY_TABLE}.created_at`)} >= (${material.since(eb)}), true)` : sql<boolean>`true`

function keyMaterial<Req, Res>(db: object, call: IdempotentCall<Req, Res>): KeyMaterial {
  const caller = formatIdentity(call.caller)
  const encoded = Buffer.from(call.requestCodec.encode(call.request).finish()).toString('base64')
  return {
    since: boundaryOf(db, call.caller),
    caller,
    requestHash: call.fingerprints.fingerprint(`${call.method}\0${encoded}`, 'cloudpay-idempotency-request-v2'),
    key: Buffer.from(call.fingerprints.fingerprint(`${caller}\0${call.requestId}`, 'cloudpay-idempotency-key-v2'), 'base64url'),
    // Unchanged (and unkeyed): a row stored before keyed fingerprints is still found, and a retry
    // of it is refused as REQUEST_ID_REUSED instead of running a second time.
    keyId: createHash('sha256').update(`cloudpay-idempotency-id\0${call.requestId}`).digest('hex'),
  }
}

async function storedReply<Req, Res>(db: Kysely<any>, call: IdempotentCall<Req, Res>, material: KeyMaterial): Promise<Res | undefined> {
  const keys: Kysely<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }> = db
  const previous = await keys
    .selectFrom(IDEMPOTENCY_TABLE)
    .select(['method', 'request_hash', 'response'])
    .where('caller', '=', material.caller)
    .where('request_id', '=', material.keyId)
    .where(ofCurrentBoundary(material))
    .executeTakeFirst()
  return previous ? answerIn(call, material, previous) : undefined
}

/** The answer in a stored row: none while its call is in flight (empty response); REQUEST_ID_REUSED for another request. */
function answerIn<Req, Res>(call: IdempotentCall<Req, Res>, material: KeyMaterial, row: { method: string; request_hash: string; response: Uint8Array }): Res | undefined {
  if (row.response.length === 0) return undefined
  if (row.method !== call.method || row.request_hash !== material.requestHash) {
    throw InvalidArgumentError.field('request_id', 'was already used for a different request; use a new request id', 'REQUEST_ID_REUSED')
  }
  return call.responseCodec.decode(open(material.key, row.response))
}

/**
 * The stored answer of an earlier call with this request id, if there is one. Handlers use
 * idempotentAfter/idempotentFlow instead, which also cover duplicates in flight.
 */
export function replayOf<Database, Req, Res>(db: Kysely<Database>, call: IdempotentCall<Req, Res>): Promise<Res | undefined> {
  return storedReply(db, call, keyMaterial(db, call))
}

/** Stores `work`'s answer with its effects, in one transaction; the part of a flow that commits. */
export type Commit<Database, Res> = (work: (trx: Transaction<Database>) => Promise<Res>) => Promise<Res>

/**
 * A handler's whole flow under one request id: preparation outside any transaction (state
 * checks, peer calls, a slow hash; never a transaction held across them), then `commit(work)`,
 * which runs `work` and stores its answer in one transaction. A retry of an answered request
 * gets the answer without preparing again; a duplicate of one in flight in this process waits
 * for it; a deliberate refusal gives way to an answer stored under the id meanwhile.
 */
export function idempotentFlow<Database, Req, Res>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  flow: (commit: Commit<Database, Res>) => Promise<Res>,
  options: FlowOptions = {},
): Promise<Res> {
  return once(db, call, flow, !options.repeatablePreparation)
}

/**
 * A call's stored answer read inside another SELECT: the flow's own first read (one round trip
 * and one commit for both, where idempotentFlow would read the answer first on its own). The
 * SELECT is a `readingStoredAnswer` template: it binds `key`, and its shape follows `shape`.
 */
export interface StoredAnswer<Res> {
  /** How the lookup is bounded: by the caller's role, as the rental boundary bounds it. */
  readonly shape: AnswerShape
  readonly key: StoredAnswerKey
  /** The answer from that column's value: undefined when none (or still in flight); REQUEST_ID_REUSED when another request used the id. */
  answer(value: unknown): Res | undefined
}

/** 'none': a statement run outside any call, reading no answer. */
export type AnswerShape = 'none' | 'unbounded' | 'instance' | 'terminal'

/** Where a call's answer is stored, as a statement's bound values. */
export interface StoredAnswerKey {
  readonly answerCaller: string
  readonly answerRequestId: string
  /** The caller's id, for its rental or enrolment boundary (bound only where the service's boundary uses it). */
  readonly answerCallerId: string
}

export type AnswerColumn = (eb: ExpressionBuilder<any, any>) => AliasedExpression<unknown, 'stored_answer'>

/** The scalar subquery of the answer stored under `key`, or null, bounded as `shape` says (in `db`'s service). */
function storedAnswerColumn(db: Kysely<any>, shape: AnswerShape, key: StoredAnswerKey): AnswerColumn {
  if (shape === 'none') return () => sql<null>`null`.as('stored_answer')
  const since = shape === 'unbounded' ? undefined : templatedBoundary(db, shape, () => key.answerCallerId)
  return (eb) =>
    eb
      .selectFrom(IDEMPOTENCY_TABLE)
      .select(sql`jsonb_build_object('method', method, 'request_hash', request_hash, 'response', encode(response, 'base64'))`.as('stored'))
      .where('caller', '=', key.answerCaller)
      .where('request_id', '=', key.answerRequestId)
      .where(ofCurrentBoundary({ since }))
      .as('stored_answer')
}

/**
 * The rental boundary of a caller with this role in `db`'s service, inside a template's builder:
 * the caller's id (`idOf`, a placeholder there) is read only if the service's boundary uses it,
 * since a template refuses a value it does not bind.
 */
function templatedBoundary(db: Kysely<any>, role: 'instance' | 'terminal', idOf: () => string) {
  return boundaryOf(originOf(db) ?? db, {
    role,
    get id() {
      return idOf()
    },
  })
}

const NO_ANSWER_KEY: StoredAnswerKey = { answerCaller: '', answerRequestId: '', answerCallerId: '' }

/**
 * A store statement that also reads a call's stored answer (`answer` is its column), made once
 * per answer shape: query templates (query-template.ts) whose values are the statement's and the
 * answer's key. `stored` absent: the statement outside a call, its column null.
 */
export function readingStoredAnswer<DB, V extends object, O>(
  label: string,
  build: (db: Kysely<DB>, values: V, answer: AnswerColumn) => Compilable<O>,
): { first(db: Kysely<DB>, values: V, stored?: StoredAnswer<unknown>): Promise<O | undefined> } {
  const shaped = (shape: AnswerShape) =>
    queryTemplate(`${label}.${shape}`, (db: Kysely<DB>, values: V & StoredAnswerKey) => build(db, values, storedAnswerColumn(db, shape, values)))
  const templates = { none: shaped('none'), unbounded: shaped('unbounded'), instance: shaped('instance'), terminal: shaped('terminal') }
  return {
    first: (db, values, stored) => templates[stored?.shape ?? 'none'].first(db, { ...values, ...(stored?.key ?? NO_ANSWER_KEY) }),
  }
}

/**
 * idempotentFlow, for a flow whose first statement reads the stored answer too (a
 * `readingStoredAnswer` statement given `stored`) and returns it at once when there is one (`stored.answer`), before any check or peer call: a
 * retry of an answered request prepares nothing, as with idempotentFlow, at no extra read.
 */
export function idempotentFlowReadingAnswer<Database, Req, Res>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  flow: (commit: Commit<Database, Res>, stored: StoredAnswer<Res>) => Promise<Res>,
): Promise<Res> {
  return once(db, call, (commit, material) => flow(commit, storedAnswerOf(call, material)), false)
}

function storedAnswerOf<Req, Res>(call: IdempotentCall<Req, Res>, material: KeyMaterial): StoredAnswer<Res> {
  const role = call.caller.role
  return {
    shape: role === 'instance' || role === 'terminal' ? role : 'unbounded',
    key: { answerCaller: material.caller, answerRequestId: material.keyId, answerCallerId: call.caller.id },
    answer: (value) => {
      if (value === null || value === undefined) return undefined
      const row = (typeof value === 'string' ? JSON.parse(value) : value) as { method: string; request_hash: string; response: string }
      return answerIn(call, material, { method: row.method, request_hash: row.request_hash, response: Buffer.from(row.response, 'base64') })
    },
  }
}

export interface FlowOptions {
  /**
   * The preparation only reads (here, or from peers under request ids derived from this one, so
   * they replay their answers): then no read comes first, saving a round trip and a commit on
   * every first call, and a retry of an answered request prepares again before its claim finds
   * the stored answer (or its preparation fails and gives way to it). Leave it unset where a
   * repeat would count, cost or show: a password hash, a check the caller relies on running once.
   */
  readonly repeatablePreparation?: boolean
}

/**
 * idempotent() with a preparation step outside the transaction (a slow hash, a peer call),
 * skipped entirely when the request id was already answered.
 */
export function idempotentAfter<Database, Req, Res, Prepared>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  prepare: () => Promise<Prepared>,
  work: (trx: Transaction<Database>, prepared: Prepared) => Promise<Res>,
): Promise<Res> {
  return once(
    db,
    call,
    async (commit) => {
      const prepared = await prepare()
      return commit((trx) => work(trx, prepared))
    },
    true,
  )
}

/**
 * Runs `work` once per (caller, request id), in one transaction with the stored response. A
 * concurrent duplicate blocks on the answer's key until the first commits, then rolls back and
 * replays the first answer (or, if the first rolled back, commits its own).
 */
export function idempotent<Database, Req, Res>(db: Kysely<Database>, call: IdempotentCall<Req, Res>, work: (trx: Transaction<Database>) => Promise<Res>): Promise<Res> {
  // No read first: commit()'s insert of the answer finds an earlier one as cheaply.
  return once(db, call, (commit) => commit(work), false)
}

/** Refusals a handler makes on purpose about the request; anything else (an outage, a fault) is not an answer. */
const REFUSAL_CODES: ReadonlySet<Status> = new Set([
  Status.INVALID_ARGUMENT,
  Status.NOT_FOUND,
  Status.ALREADY_EXISTS,
  Status.FAILED_PRECONDITION,
  Status.PERMISSION_DENIED,
  Status.UNAUTHENTICATED,
  Status.RESOURCE_EXHAUSTED,
  Status.OUT_OF_RANGE,
])

function isRefusal(error: unknown): error is CloudpayError {
  return error instanceof CloudpayError && REFUSAL_CODES.has(error.code)
}

type Outcome<Res> = { readonly ok: true; readonly value: Res } | { readonly ok: false; readonly error: unknown }

/** Calls in flight in this process, per database view (one per service replica) and key. */
const inFlight = new WeakMap<object, Map<string, Promise<Outcome<unknown>>>>()

function flightsOf(db: object): Map<string, Promise<Outcome<unknown>>> {
  let flights = inFlight.get(db)
  if (!flights) inFlight.set(db, (flights = new Map()))
  return flights
}

/** Waits for a duplicate in flight, or until this call's own signal says its client is gone. */
async function waitFor<Res>(flight: Promise<Outcome<Res>>, signal: AbortSignal | undefined): Promise<Outcome<Res>> {
  if (!signal) return flight
  const inProgress = () => new AbortedError('REQUEST_IN_PROGRESS', 'a call with this request_id is still in progress; retry with the same request_id')
  if (signal.aborted) throw inProgress()
  let onAbort!: () => void
  const aborted = new Promise<never>((_, reject) => (onAbort = () => reject(inProgress())))
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await Promise.race([flight, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

async function once<Database, Req, Res>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  flow: (commit: Commit<Database, Res>, material: KeyMaterial) => Promise<Res>,
  replayFirst: boolean,
): Promise<Res> {
  const material = keyMaterial(db, call)
  // The fingerprint is part of the key: the same id with other parameters does not wait here, it is refused (REQUEST_ID_REUSED).
  const key = `${call.method}\0${material.caller}\0${material.keyId}\0${material.requestHash}`
  const flights = flightsOf(db)
  for (let current = flights.get(key); current; current = flights.get(key)) {
    const outcome = (await waitFor(current, call.signal)) as Outcome<Res>
    if (outcome.ok) return outcome.value
    // The same request was refused a moment ago: that is its answer too (unless one was stored since).
    if (isRefusal(outcome.error)) return answeredInstead(db, call, material, outcome.error)
    // The first failed for its own reasons (an outage, its client gone): this call runs itself.
  }
  let settle!: (outcome: Outcome<Res>) => void
  const flight = new Promise<Outcome<Res>>((resolve) => (settle = resolve))
  flights.set(key, flight as Promise<Outcome<unknown>>)
  try {
    const replay = replayFirst ? await storedReply(db, call, material) : undefined
    const value = replay !== undefined ? replay : await flow((work) => commit(db, call, material, work), material)
    settle({ ok: true, value })
    return value
  } catch (error) {
    if (!isRefusal(error)) {
      // A retry of an answered request whose preparation ran again and failed for its own reasons
      // (a peer down): the stored answer is still its answer. Looked for only on this failure path.
      const stored = replayFirst ? undefined : await storedReply(db, call, material).catch(() => undefined)
      if (stored !== undefined) {
        settle({ ok: true, value: stored })
        return stored
      }
      settle({ ok: false, error })
      throw error
    }
    try {
      const value = await answeredInstead(db, call, material, error)
      settle({ ok: true, value })
      return value
    } catch (final) {
      settle({ ok: false, error: final })
      throw final
    }
  } finally {
    if (flights.get(key) === flight) flights.delete(key)
  }
}

/**
 * A deliberate refusal of a call whose request id was answered meanwhile (by a duplicate that
 * committed first, on another replica) gives way to that answer; otherwise it stands.
 */
async function answeredInstead<Database, Req, Res>(db: Kysely<Database>, call: IdempotentCall<Req, Res>, material: KeyMaterial, refusal: CloudpayError): Promise<Res> {
  let stored: Res | undefined
  try {
    stored = await storedReply(db, call, material)
  } catch (error) {
    if (error instanceof CloudpayError) throw error // REQUEST_ID_REUSED: the id answered another request
    throw refusal // the database could not be read again: the refusal is still what happened
  }
  if (stored === undefined) throw refusal
  return stored
}

/** The answer's insert found the key taken: a duplicate stored its answer first (and this one's effects rolled back). */
function isAnswerTaken(error: unknown): boolean {
  return isUniqueViolation(error) && (error as { constraint?: unknown }).constraint === 'idempotency_keys_pk'
}

/**
 * Runs `work` and stores its answer in one transaction: the answer's insert is the transaction's
 * last statement, so the call costs no separate claim, and on PostgreSQL it carries the COMMIT
 * (one round trip for both). A duplicate running at the same time (on another replica; one in
 * this process waits in once()) blocks on that insert until the first commits, then finds the key
 * taken, and its transaction rolls back all it did: effects and answer commit together exactly
 * once. A duplicate whose work fails instead (it found the first's effects: "already paid", a
 * unique key taken) gets the first's answer too, if one is stored by then.
 */
async function commit<Database, Req, Res>(
  db: Kysely<Database>,
  call: IdempotentCall<Req, Res>,
  material: KeyMaterial,
  work: (trx: Transaction<Database>) => Promise<Res>,
): Promise<Res> {
  const { caller, keyId, key, requestHash } = material
  // Joined to a caller's transaction, the insert is not its last statement: that one commits it.
  const opensTransaction = !db.isTransaction
  try {
    return await inTransaction(db, async (trx) => {
      const response = await work(trx)
      const keys = trx as unknown as Transaction<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }>
      const row = { caller, request_id: keyId, method: call.method, request_hash: requestHash, response: seal(key, call.responseCodec.encode(response).finish()) }
      const { role, id } = call.caller
      const insert =
        material.since && (role === 'instance' || role === 'terminal') ? INSERT_REPLACING_EARLIER[role].compile(keys, { ...row, callerId: id }) : insertAnswer.compile(keys, row)
      await trx.executeQuery(opensTransaction ? commitsTransaction(insert) : insert)
      return response
    })
  } catch (error) {
    // Looked for only on this failure path: a duplicate's answer, committed before this call's work failed or its key was taken.
    const stored = await storedReply(db, call, material).catch((readError: unknown) => {
      if (readError instanceof CloudpayError) throw readError // REQUEST_ID_REUSED
      return undefined
    })
    if (stored !== undefined) return stored
    if (isAnswerTaken(error))
      throw new AbortedError('REQUEST_IN_PROGRESS', 'a call with this request_id was answered meanwhile but its answer could not be read; retry with the same request_id')
    throw error
  }
}

type KeysDb = Kysely<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }>
type StoredRow = { caller: string; request_id: string; method: string; request_hash: string; response: Buffer }

/** The answer's insert for a caller the rental boundary does not bound (a service, an operator). */
const insertAnswer = queryTemplate('idempotency.insertAnswer', (keys: KeysDb, row: StoredRow) =>
  keys.insertInto(IDEMPOTENCY_TABLE).values({ caller: row.caller, request_id: row.request_id, method: row.method, request_hash: row.request_hash, response: row.response }),
)

/**
 * The answer's insert for a caller the rental boundary bounds, in one statement: a row an earlier
 * rental left under the request id is deleted first (the insert reads the deletion's count, so
 * it runs after it), and only an answer of the current rental makes the insert fail as taken.
 * One template per role (the boundary's shape follows the caller's role, its value the caller's id).
 */
const insertReplacingEarlier = (role: 'instance' | 'terminal') =>
  queryTemplate(`idempotency.insertReplacingEarlier.${role}`, (keys: KeysDb, row: StoredRow & { callerId: string }) => {
    const since = templatedBoundary(keys, role, () => row.callerId)
    return keys
      .with('earlier', (db) =>
        db
          .deleteFrom(IDEMPOTENCY_TABLE)
          .where('caller', '=', row.caller)
          .where('request_id', '=', row.request_id)
          .where((eb) => eb.not(ofCurrentBoundary({ since })(eb)))
          .returning('caller'),
      )
      .insertInto(IDEMPOTENCY_TABLE)
      .columns(['caller', 'request_id', 'method', 'request_hash', 'response'])
      .expression((eb) =>
        eb
          .selectFrom((q) =>
            q
              .selectFrom('earlier')
              .select((e) => e.fn.countAll().as('replaced'))
              .as('deletion'),
          )
          .select([
            sql.val(row.caller).as('caller'),
            sql.val(row.request_id).as('request_id'),
            sql.val(row.method).as('method'),
            sql.val(row.request_hash).as('request_hash'),
            sql<Buffer>`${row.response}::bytea`.as('response'),
          ]),
      )
  })
const INSERT_REPLACING_EARLIER = { instance: insertReplacingEarlier('instance'), terminal: insertReplacingEarlier('terminal') }

function seal(key: Buffer, plain: Uint8Array): Buffer {
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const body = Buffer.concat([cipher.update(plain), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body])
}

function open(key: Buffer, sealed: Uint8Array): Buffer {
  const data = Buffer.from(sealed)
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12))
  decipher.setAuthTag(data.subarray(12, 28))
  return Buffer.concat([decipher.update(data.subarray(28)), decipher.final()])
}

/**
 * Forgets the caller's stored answers of one method, in the caller's transaction: what ends the
 * object those answers granted (a terminal's removal, its EnrollTerminal answers) frees their
 * request ids, so a later call with one acts anew instead of replaying an enrolment that is over.
 */
export async function forgetAnswers(trx: Transaction<any>, caller: Identity, method: string): Promise<void> {
  // Stored as the call's "pkg.Service/Method" (a generated path without its leading slash).
  method = method.replace(/^\//, '')
  await (trx as Transaction<{ [IDEMPOTENCY_TABLE]: IdempotencyKeysTable }>)
    .deleteFrom(IDEMPOTENCY_TABLE)
    .where('caller', '=', formatIdentity(caller))
    .where('method', '=', method)
    .execute()
}

/** A stable UUID from parts: the request id of a call a service makes on behalf of another call. */
export function derivedRequestId(...parts: string[]): string {
  const hex = createHash('sha256').update(parts.join('\0')).digest('hex')
  // Version 5-style layout (name-based), so it passes UUID validation.
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16)}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}
