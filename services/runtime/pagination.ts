// AIP-158 pagination, one way for every list RPC: page_size (0 means the default, capped at the
// maximum, negative refused) and page tokens that are opaque and authenticated: an HMAC under a
// key derived from the data key (so every replica accepts every replica's tokens) binds each
// token to the caller, the method and the query's filter. An edited, foreign or re-filtered
// token is INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN, never a cursor the store trips on.
import { timingSafeEqual } from 'node:crypto'
import { type FieldViolation, InvalidArgumentError } from './errors.ts'
import { formatIdentity, type Identity } from './identity.ts'
import type { Fingerprinter } from './sealing.ts'

export const DEFAULT_PAGE_SIZE = 100
export const MAX_PAGE_SIZE = 1000
/** Tokens we issue are well under this (a cursor of <= 128 characters and a 22-character MAC). */
export const MAX_PAGE_TOKEN_LENGTH = 512
/** The shape of a token we issue: base64url cursor, '.', base64url MAC. */
export const PAGE_TOKEN_SHAPE = /^[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{22}$/

const PURPOSE = 'cloudpay-page-token-v1'
const INVALID_PAGE_TOKEN = 'INVALID_PAGE_TOKEN'

export interface PageRequest {
  readonly pageSize: number
  readonly pageToken: string
}

/** Who lists what: the token is valid only for the same caller and method. */
export interface PageContext {
  readonly caller: Identity
  readonly method: string
  readonly fingerprints: Fingerprinter
}

/** How a list's cursor (the last row's key) is written into a token and read back. */
export interface Cursor<C> {
  write(cursor: C): string
  read(text: string): C | undefined
}

export const SEQUENCE_CURSOR: Cursor<bigint> = {
  write: (cursor) => cursor.toString(),
  read: (text) => (/^\d{1,19}$/.test(text) && BigInt(text) < 2n ** 63n ? BigInt(text) : undefined),
}
export const KEY_CURSOR: Cursor<string> = { write: (cursor) => cursor, read: (text) => text }

/** The page fields' rules, worded once: the handler edge (validation.ts `page`) and listPage refuse alike. */
const PAGE_SIZE_RULE = 'must not be negative (0 means the default)'
const TOKEN_SHAPE_RULE = 'is not a token returned by this method'
const hasTokenShape = (token: string): boolean => token.length <= MAX_PAGE_TOKEN_LENGTH && PAGE_TOKEN_SHAPE.test(token)

/** What is wrong with a request's page_size and page_token shape, before anything else is read (whose token it is, listPage checks). */
export function pageRequestViolations(request: PageRequest): FieldViolation[] {
  const violations: FieldViolation[] = []
  if (request.pageSize < 0) violations.push({ field: 'page_size', description: PAGE_SIZE_RULE })
  if (request.pageToken !== '' && !hasTokenShape(request.pageToken)) violations.push({ field: 'page_token', description: TOKEN_SHAPE_RULE, reason: INVALID_PAGE_TOKEN })
  return violations
}

export function pageSize(value: number, field = 'page_size'): number {
  if (value < 0) throw InvalidArgumentError.field(field, PAGE_SIZE_RULE)
  if (value === 0) return DEFAULT_PAGE_SIZE
  return Math.min(value, MAX_PAGE_SIZE)
}

export interface PageSpec<Row, C> {
  /** Everything that narrows the list; a token works only with the same filter. */
  readonly filter: unknown
  readonly cursor: Cursor<C>
  /**
   * Rows after the cursor `after` in the list's own order (all from the start when undefined), at
   * most `limit`: for a newest-first list (wakes, orders, ledger entries), the rows older than it.
   */
  readonly fetch: (after: C | undefined, limit: number) => Promise<Row[]>
  /** The cursor of a row: the page after it starts behind it. (After `fetch`, so TypeScript infers Row from it.) */
  readonly cursorOf: (row: Row) => C
}

/** One page of a list RPC and the token of the next (empty on the last page). */
export async function listPage<Row, C>(ctx: PageContext, request: PageRequest, spec: PageSpec<Row, C>): Promise<{ items: Row[]; nextPageToken: string }> {
  const size = pageSize(request.pageSize)
  const after = request.pageToken === '' ? undefined : readToken(ctx, request.pageToken, spec)
  // One row more than the page tells whether another page follows.
  const rows = await spec.fetch(after, size + 1)
  if (rows.length <= size) return { items: rows, nextPageToken: '' }
  const items = rows.slice(0, size)
  return { items, nextPageToken: writeToken(ctx, spec, spec.cursorOf(items[items.length - 1]!)) }
}

function mac(ctx: PageContext, filter: unknown, payload: string): string {
  const bound = [ctx.method, formatIdentity(ctx.caller), stableJson(filter), payload].join('\0')
  return ctx.fingerprints.fingerprint(bound, PURPOSE).slice(0, 22)
}

function writeToken<Row, C>(ctx: PageContext, spec: PageSpec<Row, C>, cursor: C): string {
  const payload = Buffer.from(spec.cursor.write(cursor), 'utf8').toString('base64url')
  return `${payload}.${mac(ctx, spec.filter, payload)}`
}

function readToken<Row, C>(ctx: PageContext, token: string, spec: PageSpec<Row, C>): C {
  const refuse = (why: string) => InvalidArgumentError.field('page_token', why, INVALID_PAGE_TOKEN)
  if (!hasTokenShape(token)) throw refuse(TOKEN_SHAPE_RULE)
  const [payload, given] = token.split('.') as [string, string]
  const expected = mac(ctx, spec.filter, payload)
  // Any edit, another caller, another method or another filter: the MAC does not match.
  if (!timingSafeEqual(Buffer.from(given), Buffer.from(expected))) throw refuse('was not issued by this method to this caller for these filters; start again with an empty page_token')
  const cursor = spec.cursor.read(Buffer.from(payload, 'base64url').toString('utf8'))
  if (cursor === undefined) throw refuse(TOKEN_SHAPE_RULE)
  return cursor
}

/** JSON with 64-bit values as strings: the filter's bytes must be the same on every replica. */
function stableJson(value: unknown): string {
  return JSON.stringify(value ?? null, (_key, inner: unknown) => (typeof inner === 'bigint' ? inner.toString() : inner))
}
