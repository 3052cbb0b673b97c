// AIP-158 page sizes and tokens: one helper pages every list; its tokens are authenticated and
// bound to the caller, the method and the filter, so an edited token is refused, never obeyed.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { InvalidArgumentError } from '../../services/runtime/errors.ts'
import { KEY_CURSOR, listPage, type PageContext, pageSize, SEQUENCE_CURSOR } from '../../services/runtime/pagination.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { validate } from '../../services/runtime/validation.ts'

const key = randomBytes(32)
const ctx: PageContext = { caller: { role: 'operator', id: 'op-1' }, method: 'pkg.Service/ListThings', fingerprints: new Sealer(key) }
const ROWS = Array.from({ length: 7 }, (_, i) => ({ seq: BigInt(i + 1), name: `row-${i + 1}` }))
const list = (request: { pageSize: number; pageToken: string }, overrides: Partial<PageContext> = {}, filter: unknown = { owner: 'a' }) =>
  listPage({ ...ctx, ...overrides }, request, {
    filter,
    cursor: SEQUENCE_CURSOR,
    fetch: async (after, limit) => ROWS.filter((r) => after === undefined || r.seq > after).slice(0, limit),
    cursorOf: (row) => row.seq,
  })

const refusedToken = async (promise: Promise<unknown>) => {
  const error = await promise.then(
    () => assert.fail('the token was accepted'),
    (e: unknown) => e,
  )
  assert.ok(error instanceof InvalidArgumentError)
  assert.equal(error.reason, 'INVALID_PAGE_TOKEN')
  assert.equal(error.violations[0]?.field, 'page_token')
}

test('page size: 0 means the default, large values are capped, negative is refused', () => {
  assert.equal(pageSize(0), 100)
  assert.equal(pageSize(7), 7)
  assert.equal(pageSize(2 ** 31 - 1), 1000)
  assert.throws(() => pageSize(-1), InvalidArgumentError)
})

test('listPage pages through every row once and ends with an empty token', async () => {
  const seen: string[] = []
  let pageToken = ''
  do {
    const page = await list({ pageSize: 3, pageToken })
    seen.push(...page.items.map((r) => r.name))
    pageToken = page.nextPageToken
  } while (pageToken !== '')
  assert.deepEqual(seen, ROWS.map((r) => r.name))
})

test('a token is refused when edited, or used by another caller, method, filter or data key', async () => {
  const { nextPageToken: token } = await list({ pageSize: 2, pageToken: '' })
  const [payload, mac] = token.split('.') as [string, string]
  const forged = (cursor: string) => `${Buffer.from(cursor).toString('base64url')}.${mac}`
  for (const edited of [forged('3'), forged('abc'), forged('99999999999999999999999'), `${payload}.${'A'.repeat(22)}`, `${payload}x.${mac}`]) {
    await refusedToken(list({ pageSize: 2, pageToken: edited }))
  }
  await refusedToken(list({ pageSize: 2, pageToken: token }, { caller: { role: 'operator', id: 'op-2' } }))
  await refusedToken(list({ pageSize: 2, pageToken: token }, { method: 'pkg.Service/ListOtherThings' }))
  await refusedToken(list({ pageSize: 2, pageToken: token }, {}, { owner: 'b' }))
  await refusedToken(list({ pageSize: 2, pageToken: token }, { fingerprints: new Sealer(randomBytes(32)) }))
  // The unsigned tokens of before (base64 JSON) and plain garbage.
  await refusedToken(list({ pageSize: 2, pageToken: Buffer.from(JSON.stringify({ c: '2', f: 'x' })).toString('base64url') }))
  await refusedToken(list({ pageSize: 2, pageToken: '%%%' }))
  // Another replica with the same data key continues the listing.
  const next = await list({ pageSize: 2, pageToken: token }, { fingerprints: new Sealer(key) })
  assert.deepEqual(next.items.map((r) => r.name), ['row-3', 'row-4'])
})

test('text cursors travel opaquely, whatever characters the keys hold', async () => {
  const keys = ['a', 'b/é', 'c.d', 'z😀']
  const first = await listPage(ctx, { pageSize: 2, pageToken: '' }, { filter: null, cursor: KEY_CURSOR, fetch: async (_after, limit) => keys.slice(0, limit), cursorOf: (k) => k })
  assert.match(first.nextPageToken, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
  const second = await listPage(ctx, { pageSize: 2, pageToken: first.nextPageToken }, {
    filter: null,
    cursor: KEY_CURSOR,
    fetch: async (after, limit) => keys.filter((k) => after === undefined || k > after).slice(0, limit),
    cursorOf: (k) => k,
  })
  assert.deepEqual(second.items, ['c.d', 'z😀'])
})

test('the handler edge and listPage word the page rules alike: the field, the rule and the reason', async () => {
  const edge = (request: { pageSize: number; pageToken: string }) => {
    try {
      validate((v) => v.page(request))
    } catch (error) {
      return (error as InvalidArgumentError).violations
    }
    return []
  }
  const helper = async (request: { pageSize: number; pageToken: string }) => list(request).then(() => [], (error: InvalidArgumentError) => error.violations)
  for (const request of [{ pageSize: -1, pageToken: '' }, { pageSize: 2, pageToken: '%%%' }, { pageSize: 2, pageToken: `${'A'.repeat(600)}.${'B'.repeat(22)}` }]) {
    const atEdge = edge(request)
    assert.equal(atEdge.length, 1, JSON.stringify(request))
    assert.deepEqual(await helper(request), atEdge)
  }
  assert.deepEqual(edge({ pageSize: -1, pageToken: '%%%' }).map((v) => [v.field, v.reason]), [['page_size', undefined], ['page_token', 'INVALID_PAGE_TOKEN']], 'both reported together')
  assert.deepEqual(edge({ pageSize: 0, pageToken: '' }), [])
})
