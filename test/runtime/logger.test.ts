// Logs are JSON, print 64-bit values, and never write a secret-bearing field.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '../../services/runtime/logger.ts'

test('secret fields are redacted at any depth, bigints printed as strings', () => {
  const lines: string[] = []
  const log = createLogger({ level: 'info', name: 'test', destination: { write: (line: string) => void lines.push(line) } })
  log.info({ request: { accountId: 'alice', password: 'hunter2-secret' }, paymentPassword: 'pay-secret', amount: 2n ** 63n - 1n }, 'hello')
  assert.equal(lines.length, 1)
  const text = lines[0]!
  assert.doesNotMatch(text, /hunter2-secret|pay-secret/)
  const line = JSON.parse(text)
  assert.equal(line.request.password, '[redacted]')
  assert.equal(line.request.accountId, 'alice')
  assert.equal(line.amount, '9223372036854775807')
  assert.equal(line.level, 'info')
})
