// The bounded memo behind parsed certificates, result keys and statement shapes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { remembered } from '../../services/runtime/remembered.ts'

test('an answer is computed once per input, null answers included, and the oldest is forgotten past the limit', () => {
  const computed: string[] = []
  const lengthOf = remembered(2, (key: string) => {
    computed.push(key)
    return key === 'none' ? null : key.length
  })
  assert.equal(lengthOf('ab'), 2)
  assert.equal(lengthOf('ab'), 2)
  assert.equal(lengthOf('none'), null)
  assert.equal(lengthOf('none'), null)
  assert.deepEqual(computed, ['ab', 'none'])
  lengthOf('xyz') // the third input: 'ab', the first remembered, is forgotten
  lengthOf('ab')
  assert.deepEqual(computed, ['ab', 'none', 'xyz', 'ab'])
})

test('a computation that throws is not remembered', () => {
  let calls = 0
  const parse = remembered(4, (key: string) => {
    calls++
    if (key === 'bad') throw new Error('unparseable')
    return key
  })
  assert.throws(() => parse('bad'))
  assert.throws(() => parse('bad'))
  assert.equal(calls, 2)
})
