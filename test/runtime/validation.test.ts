// The edge validation vocabulary: declared maxima, character rules and ranges, each failure
// naming the field without echoing the value, all of a request's failures reported together.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { InvalidArgumentError } from '../../services/runtime/errors.ts'
import { MAX_AMOUNT_MINOR, UUID_PATTERN, validate, type Validator } from '../../services/runtime/validation.ts'

function violations(build: (v: Validator) => void): { field: string; description: string; reason?: string }[] {
  try {
    validate(build)
    return []
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError)
    return [...error.violations]
  }
}
const fieldsOf = (build: (v: Validator) => void) => violations(build).map((v) => v.field)

test('free text: a declared length in characters, printable only, line breaks only where multi-line', () => {
  const text = (value: string, multiline = false) => fieldsOf((v) => v.text(value, 'reason', { max: 10, multiline }))
  assert.deepEqual(text('fine 😀 é'), [])
  assert.deepEqual(text('😀'.repeat(10)), [], 'counted in characters, not UTF-16 units')
  for (const bad of ['x'.repeat(11), 'del\u007f', 'c1\u0085', 'bad\uFFFD', 'lone\uD800', 'tab\there', 'nul\u0000']) assert.deepEqual(text(bad), ['reason'], JSON.stringify(bad))
  assert.deepEqual(text('two\nlines\t', true), [])
  assert.deepEqual(text('cr\r', true), ['reason'])
  const [huge] = violations((v) => v.text('y'.repeat(1 << 20), 'reason', { max: 10 }))
  assert.ok(huge && !huge.description.includes('yyy'), 'the value is not echoed')
})

test('formats, ids and request ids: required unless optional, anchored', () => {
  const binding = { pattern: UUID_PATTERN, description: 'must be a binding id' }
  assert.deepEqual(fieldsOf((v) => v.format('', 'binding_id', binding, { optional: true })), [])
  assert.deepEqual(fieldsOf((v) => v.format('', 'binding_id', binding)), ['binding_id'])
  assert.deepEqual(fieldsOf((v) => v.format(`${crypto.randomUUID()}\n`, 'binding_id', binding)), ['binding_id'])
  assert.deepEqual(fieldsOf((v) => v.id('a'.repeat(129), 'device_id').id('-x', 'terminal_id').id('', 'x', { optional: true }).requestId('nope')), ['device_id', 'terminal_id', 'request_id'])
})

test('numbers: money up to MAX_AMOUNT_MINOR, integers and timestamps within their ranges', () => {
  const money = (amountMinor: bigint, positive = false) => fieldsOf((v) => v.money({ currencyCode: 'USD', amountMinor }, 'amount', { positive }))
  assert.deepEqual(money(MAX_AMOUNT_MINOR), [])
  assert.deepEqual(money(MAX_AMOUNT_MINOR + 1n), ['amount.amount_minor'])
  assert.deepEqual(money(2n ** 63n - 1n), ['amount.amount_minor'])
  assert.deepEqual(money(-1n), ['amount.amount_minor'])
  assert.deepEqual(money(0n, true), ['amount.amount_minor'])
  assert.deepEqual(fieldsOf((v) => v.money({ currencyCode: 'usd', amountMinor: 1n }, 'amount')), ['amount.currency_code'])
  assert.deepEqual(fieldsOf((v) => v.integer(101, 'quantity', { min: 1, max: 100 }).integer(1.5, 'half', { min: 0, max: 2 }).integer(2n ** 60n, 'after_sequence', { min: 0n, max: 2n ** 53n })), [
    'quantity',
    'half',
    'after_sequence',
  ])
  assert.deepEqual(fieldsOf((v) => v.timestamp(new Date(Number.NaN), 'a').timestamp(new Date('+010000-01-01T00:00:00Z'), 'b').timestamp(undefined, 'c', { required: true }).timestamp(new Date(), 'd')), ['a', 'b', 'c'])
})

test('page size and token shape, the token refusal with reason INVALID_PAGE_TOKEN', () => {
  const found = violations((v) => v.id('', 'device_id').page({ pageSize: -1, pageToken: 'x'.repeat(1000) }))
  assert.deepEqual(found.map((v) => [v.field, v.reason]), [
    ['device_id', undefined],
    ['page_size', undefined],
    ['page_token', 'INVALID_PAGE_TOKEN'],
  ])
  try {
    validate((v) => v.page({ pageSize: 0, pageToken: 'garbage' }))
    assert.fail('accepted')
  } catch (error) {
    assert.equal((error as InvalidArgumentError).reason, 'INVALID_PAGE_TOKEN', 'the only violation gives the error its reason')
  }
})
