// One list of secret fields, one way to blank them: fingerprints, log lines and span attributes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '../../services/runtime/logger.ts'
import { isSecretField, SECRET_FIELDS, withoutSecrets } from '../../services/runtime/secrets.ts'

test('the list holds each secret field in snake_case and in camelCase', () => {
  for (const name of ['password', 'payment_password', 'paymentPassword', 'payer_account', 'payerAccount', 'login_token', 'loginToken', 'session_token', 'sessionToken']) {
    assert.ok(isSecretField(name), name)
  }
  assert.ok(!isSecretField('deviceId') && !isSecretField('masked_payer_account'))
  assert.equal(new Set(SECRET_FIELDS).size, SECRET_FIELDS.length)
})

test('withoutSecrets blanks secret fields at any depth and leaves the rest, and the original, intact', () => {
  const when = new Date(0)
  const request = { deviceId: 'd', paymentPassword: 'pw', nested: [{ payer_account: 'ACC1', keep: 1n }], when, bytes: new Uint8Array([1]) }
  const blanked = withoutSecrets(request)
  assert.deepEqual(blanked, { deviceId: 'd', paymentPassword: '', nested: [{ payer_account: '', keep: 1n }], when, bytes: new Uint8Array([1]) })
  assert.equal(request.paymentPassword, 'pw')
  assert.equal(withoutSecrets({ a: { b: { c: { d: { loginToken: 't' } } } } }, '*').a.b.c.d.loginToken, '*')
})

test('log lines never hold a secret, however deep it is logged', () => {
  const lines: string[] = []
  const log = createLogger({ level: 'info', name: 'test', destination: { write: (line: string) => void lines.push(line) } })
  log.info({ call: { request: { order: { binding: { payerAccount: 'ACCT-DEEP-1' } } } }, session_token: 'tok-shallow', amount: 5n }, 'deep')
  log.child({ request: { password: 'in-bindings' } }).info('bound')
  const text = lines.join('')
  assert.doesNotMatch(text, /ACCT-DEEP-1|tok-shallow|in-bindings/)
  assert.equal(JSON.parse(lines[0]!).call.request.order.binding.payerAccount, '[redacted]')
  assert.equal(JSON.parse(lines[0]!).amount, '5')
})
