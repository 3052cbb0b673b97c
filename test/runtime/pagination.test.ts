// AIP-158 page sizes and tokens.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InvalidArgumentError } from '../../services/runtime/errors.ts'
import { decodePageToken, encodePageToken, page, pageSize } from '../../services/runtime/pagination.ts'

test('page size: 0 means the default, large values are capped, negative is refused', () => {
  assert.equal(pageSize(0), 100)
  assert.equal(pageSize(7), 7)
  assert.equal(pageSize(1_000_000), 1000)
  assert.throws(() => pageSize(-1), InvalidArgumentError)
})

test('a token carries its cursor and works only with the filter it was issued for', () => {
  const token = encodePageToken('cursor-1', { terminalId: 'a' })
  assert.equal(decodePageToken(token, { terminalId: 'a' }), 'cursor-1')
  assert.throws(() => decodePageToken(token, { terminalId: 'b' }), /other filters/)
  assert.throws(() => decodePageToken('%%%', null), /not a token/)
  assert.equal(decodePageToken('', null), undefined)
})

test('page() tells from one extra row whether another page follows', () => {
  const rows = [1, 2, 3]
  assert.deepEqual(page(rows, 3, String, null), { items: [1, 2, 3], nextPageToken: '' })
  const partial = page(rows, 2, String, null)
  assert.deepEqual(partial.items, [1, 2])
  assert.equal(decodePageToken(partial.nextPageToken, null), '2')
})
