// The root request screen: it walks decoded messages by their descriptors, so it must see every
// field ts-proto decodes, through nesting, repeated fields, maps and oneofs, and name each by its
// proto path.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { DescMessage } from '@bufbuild/protobuf'
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { AppServiceService } from '../../gen/cloudpay/app/v1/app_service.ts'
import { InstanceEventsServiceService } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { HealthService } from '../../gen/grpc/health/v1/health.ts'
import { ServerReflectionService } from '../../gen/grpc/reflection/v1/reflection.ts'
import { descriptorRegistry } from '../../services/runtime/descriptor-image.ts'
import { MAX_REQUEST_STRING_LENGTH } from '../../services/runtime/limits.ts'
import { readableRequests, refusalOf, requestSchemaOf, UnreadableRequest, violationsOf } from '../../services/runtime/request-screen.ts'

const DEFINITIONS = [AccountManagementServiceService, AppServiceService, InstanceEventsServiceService, PaymentManagementServiceService, PaymentPlatformServiceService, HealthService, ServerReflectionService]

const message = (typeName: string): DescMessage => {
  const found = descriptorRegistry().getMessage(typeName)
  assert.ok(found, typeName)
  return found
}
const fields = (schema: DescMessage, found: unknown) => violationsOf(schema, found).map((v) => v.field)

test('the screen reads every field ts-proto decodes: property names are the descriptors\' local names', () => {
  for (const definition of DEFINITIONS) {
    for (const method of Object.values(definition)) {
      const schema = requestSchemaOf(method.path)
      const decoded = method.requestDeserialize(Buffer.alloc(0)) as object
      const expected = new Set(schema.fields.map((f) => (f.oneof ? f.oneof.localName : f.localName)))
      // A oneof with no case set decodes to undefined, so it may be absent.
      for (const key of Object.keys(decoded)) assert.ok(expected.has(key), `${method.path}: ${key} is a field of ${schema.typeName}`)
      for (const f of schema.fields) if (!f.oneof) assert.ok(f.localName in decoded, `${method.path}: ${f.localName} decoded`)
    }
  }
})

test('nested messages, maps and timestamps are named by their proto paths', () => {
  const order = {
    appOrderId: 'fine',
    unitPrice: { currencyCode: 'EU\u0000R', amountMinor: 1n },
    collectionAccounts: { ok: 'ACC1', 'bad\u0000key': 'ACC2', other: 'x'.repeat(MAX_REQUEST_STRING_LENGTH + 1) },
    description: 'two\nlines\tand a tab are text',
    createTime: new Date(Number.NaN),
    effectiveTime: new Date(Date.UTC(9999, 11, 31)),
  }
  assert.deepEqual(fields(message('cloudpay.app.v1.AppOrder'), order).sort(), [
    'collection_accounts["bad\\u0000key"]',
    'collection_accounts["other"]',
    'create_time',
    'unit_price.currency_code',
  ])
})

test('repeated fields name the element, oneofs the case that is set', () => {
  const services = { service: [{ name: 'ok' }, { name: 'bad\uFFFD' }, { name: 'lone \uD800 surrogate' }] }
  assert.deepEqual(fields(message('grpc.reflection.v1.ListServiceResponse'), services), ['service[1].name', 'service[2].name'])
  const reflection = { host: '', messageRequest: { $case: 'fileContainingSymbol', value: 'a\u0001b' } }
  assert.deepEqual(fields(message('grpc.reflection.v1.ServerReflectionRequest'), reflection), ['file_containing_symbol'])
  // Emoji (surrogate pairs) and other text pass.
  assert.deepEqual(fields(message('grpc.reflection.v1.ServerReflectionRequest'), { host: 'ok 😀 é', messageRequest: undefined }), [])
})

test('a body that does not decode becomes an UnreadableRequest, refused as MALFORMED_REQUEST', () => {
  const definition = readableRequests(PaymentManagementServiceService as never)
  const decoded = definition.prepayOrder!.requestDeserialize(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]))
  assert.ok(decoded instanceof UnreadableRequest)
  const refusal = refusalOf(PaymentManagementServiceService.prepayOrder.path, decoded)
  assert.equal(refusal?.reason, 'MALFORMED_REQUEST')
  assert.match(refusal!.message, /^request is not a valid encoding of cloudpay\.payment\.v1\.PrepayOrderRequest/)
})
