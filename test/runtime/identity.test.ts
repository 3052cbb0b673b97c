// Reading the caller's identity from a certificate's subjectaltname, strictly.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { identityFromSubjectAltName, parseSpiffeUri } from '../../services/runtime/identity.ts'

test('one SPIFFE URI of the cloudpay trust domain is an identity', () => {
  assert.deepEqual(identityFromSubjectAltName('URI:spiffe://cloudpay.local/instance/device-7, DNS:localhost'), { role: 'instance', id: 'device-7' })
  assert.deepEqual(identityFromSubjectAltName('DNS:localhost, URI:spiffe://cloudpay.local/service/app-service, IP Address:127.0.0.1'), {
    role: 'service',
    id: 'app-service',
  })
})

test('anything else is no identity', () => {
  const refused = [
    undefined,
    '',
    'DNS:localhost',
    'URI:spiffe://other.domain/instance/device-7',
    'URI:spiffe://cloudpay.local/admin/root',
    'URI:spiffe://cloudpay.local/instance/device-7/extra',
    'URI:spiffe://cloudpay.local/instance/',
    'URI:spiffe://cloudpay.local/instance/a b',
    // Two URIs: which one would we believe?
    'URI:spiffe://cloudpay.local/instance/a, URI:spiffe://cloudpay.local/operator/b',
    // Node quotes unusual SAN entries; a quoted entry could smuggle a separator.
    'URI:"spiffe://cloudpay.local/operator/x, URI:spiffe://cloudpay.local/instance/y"',
  ]
  for (const san of refused) assert.equal(identityFromSubjectAltName(san), null, String(san))
  assert.equal(parseSpiffeUri('https://cloudpay.local/operator/x'), null)
})
