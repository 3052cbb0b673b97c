// AIP-158 pagination: page_size (0 means the default, capped at the maximum) and opaque page
// tokens that encode the cursor and are bound to the request's filter.
import { createHash } from 'node:crypto'
import { InvalidArgumentError } from './errors.ts'

export const DEFAULT_PAGE_SIZE = 100
export const MAX_PAGE_SIZE = 1000

export function pageSize(value: number, field = 'page_size'): number {
  if (value < 0) throw InvalidArgumentError.field(field, 'must not be negative')
  if (value === 0) return DEFAULT_PAGE_SIZE
  return Math.min(value, MAX_PAGE_SIZE)
}

function filterHash(filter: unknown): string {
  return createHash('sha256')
    .update(JSON.stringify(filter ?? null))
    .digest('base64url')
    .slice(0, 12)
}

/** A token for the page after `cursor`, valid only with the same filter. */
export function encodePageToken(cursor: string | number, filter: unknown): string {
  return Buffer.from(JSON.stringify({ c: cursor, f: filterHash(filter) })).toString('base64url')
}

/** The cursor in a token ('' means the first page); a foreign, corrupt or re-filtered token is refused. */
export function decodePageToken(token: string, filter: unknown, field = 'page_token'): string | number | undefined {
  if (token === '') return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'))
  } catch {
    throw InvalidArgumentError.field(field, 'is not a token returned by this method', 'INVALID_PAGE_TOKEN')
  }
  const { c, f } = (parsed ?? {}) as { c?: unknown; f?: unknown }
  if ((typeof c !== 'string' && typeof c !== 'number') || typeof f !== 'string') {
    throw InvalidArgumentError.field(field, 'is not a token returned by this method', 'INVALID_PAGE_TOKEN')
  }
  if (f !== filterHash(filter)) throw InvalidArgumentError.field(field, 'was issued for a request with other filters', 'INVALID_PAGE_TOKEN')
  return c
}

/** Splits one extra fetched row off to tell whether another page follows. */
export function page<Row>(rows: Row[], size: number, cursorOf: (row: Row) => string | number, filter: unknown): { items: Row[]; nextPageToken: string } {
  if (rows.length <= size) return { items: rows, nextPageToken: '' }
  const items = rows.slice(0, size)
  return { items, nextPageToken: encodePageToken(cursorOf(items[items.length - 1]!), filter) }
}
