// The mesh foundation seen from outside: every service over mutual TLS, health, reflection that
// strict clients accept, authorization before handlers, errors with details, idempotency, traces.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { credentials as grpcCredentials, Metadata, status as Status } from '@grpc/grpc-js'
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf'
import { FileDescriptorProtoSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt'
import { SpanKind } from '@opentelemetry/api'
import { readFile } from 'node:fs/promises'
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { SERVICE_NAMES, type ServiceName } from '../../services/runtime/config.ts'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import { ensureDevCertificate, issueSeparateDevCertificate } from '../../services/runtime/dev-certificates.ts'
import { AccountManagementServiceClient } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { INSTANCE, OPERATOR, startTestMesh, TERMINAL, type TestMesh } from '../helpers/mesh.ts'
import { openReflection } from '../helpers/reflection.ts'

const PROTO_SERVICES: Record<ServiceName, string> = {
  'account-management': 'cloudpay.account.v1.AccountManagementService',
  'payment-management': 'cloudpay.payment.v1.PaymentManagementService',
  'instance-events': 'cloudpay.events.v1.InstanceEventsService',
  'payment-platform': 'cloudpay.platform.v1.PaymentPlatformService',
  'app-service': 'cloudpay.app.v1.AppService',
  'push-relay': 'cloudpay.push.v1.PushRelayService',
}

/** Files ordered so that each comes after the files it imports. */
function dependenciesFirst(files: Map<string, FileDescriptorProto>): FileDescriptorProto[] {
  const ordered: FileDescriptorProto[] = []
  const visit = (name: string): void => {
    const file = files.get(name)
    if (!file || ordered.includes(file)) return
    file.dependency.forEach(visit)
    ordered.push(file)
  }
  for (const name of files.keys()) visit(name)
  return ordered
}

function leadingComment(file: FileDescriptorProto, path: number[]): string | undefined {
  return file.sourceCodeInfo?.location.find((l) => l.path.length === path.length && l.path.every((p, i) => p === path[i]))?.leadingComments
}

let t: TestMesh
before(async () => {
  t = await startTestMesh()
})
after(async () => {
  await t?.stop()
})

describe('every service', () => {
  for (const name of SERVICE_NAMES) {
    test(`${name} answers health SERVING over mTLS, for the server and for its service`, async () => {
      const client = new HealthClient(t.address(name), await t.credentials(OPERATOR))
      try {
        for (const service of ['', PROTO_SERVICES[name]]) {
          const reply = await unaryCall(client, 'check', { service })
          assert.equal(reply.status, HealthCheckResponse_ServingStatus.SERVING, `health of ${JSON.stringify(service)} on ${name}`)
        }
        await expectStatus(unaryCall(client, 'check', { service: 'no.such.Service' }), Status.NOT_FOUND)
      } finally {
        client.close()
      }
    })

    test(`${name} reflection lists its service, and its descriptors resolve with their imports and comments`, async () => {
      const session = openReflection(t.address(name), await t.credentials(TERMINAL))
      try {
        const listed = await session.ask({ $case: 'listServices', value: '' })
        assert.equal(listed.messageResponse?.$case, 'listServicesResponse')
        const names = listed.messageResponse.value.service.map((s) => s.name).sort()
        assert.deepEqual(names, [PROTO_SERVICES[name], 'grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'].sort())

        // Like grpcurl: ask for each service's file, then any import not yet received, by name.
        const files = new Map<string, FileDescriptorProto>()
        const receive = (response: Awaited<ReturnType<typeof session.ask>>): void => {
          assert.equal(response.messageResponse?.$case, 'fileDescriptorResponse', JSON.stringify(response.messageResponse))
          for (const bytes of response.messageResponse.value.fileDescriptorProto) {
            const file = fromBinary(FileDescriptorProtoSchema, bytes)
            files.set(file.name, file)
          }
        }
        for (const service of names) receive(await session.ask({ $case: 'fileContainingSymbol', value: service }))
        for (const file of [...files.values()]) {
          for (const dependency of file.dependency) if (!files.has(dependency)) receive(await session.ask({ $case: 'fileByFilename', value: dependency }))
        }
        // A strict registry refuses any unresolvable reference (what broke grpcurl with @grpc/reflection).
        const registry = createFileRegistry({ $typeName: 'google.protobuf.FileDescriptorSet', file: dependenciesFirst(files) } as never)
        const service = registry.getService(PROTO_SERVICES[name])
        assert.ok(service, `${PROTO_SERVICES[name]} resolves`)
        assert.ok(service.methods.length >= 2)
        for (const method of service.methods) assert.ok(method.input.fields.length > 0, `${method.name} input has fields`)
        // Comments travel too (source_code_info): grpcurl describe prints them as the API docs.
        const file = files.get(service.file.proto.name)!
        const serviceIndex = file.service.findIndex((s) => s.name === service.name)
        assert.match(leadingComment(file, [6, serviceIndex]) ?? '', /\w+/, 'the service has a comment')
        file.service[serviceIndex]!.method.forEach((method, index) => {
          assert.match(leadingComment(file, [6, serviceIndex, 2, index]) ?? '', /Caller:|\w+/, `${method.name} has a comment`)
        })
        const timestampUser = [...files.values()].find((f) => f.dependency.includes('google/protobuf/timestamp.proto'))
        assert.ok(timestampUser, 'some file imports google/protobuf/timestamp.proto and declares it')
        assert.ok(files.has('google/protobuf/timestamp.proto'))

        const unknown = await session.ask({ $case: 'fileContainingSymbol', value: 'no.such.Symbol' })
        assert.equal(unknown.messageResponse?.$case, 'errorResponse')
        assert.equal(unknown.messageResponse.value.errorCode, Status.NOT_FOUND)
      } finally {
        session.close()
      }
    })
  }
})

describe('mutual TLS', () => {
  const health = async (credentials: ReturnType<typeof grpcCredentials.createInsecure>) => {
    const client = new HealthClient(t.address('account-management'), credentials)
    try {
      return await unaryCall(client, 'check', { service: '' }, { deadlineMs: 3000 })
    } finally {
      client.close()
    }
  }

  test('a plaintext client is refused', async () => {
    await expectStatus(health(grpcCredentials.createInsecure()), Status.UNAVAILABLE)
  })

  test('a TLS client without a certificate is refused', async () => {
    const ca = await readFile(`${t.config.home}/certs/ca.crt`)
    await expectStatus(health(grpcCredentials.createSsl(ca)), Status.UNAVAILABLE)
  })

  test('a client whose certificate comes from another CA is refused', async () => {
    const other = await import('node:fs/promises').then((fs) => fs.mkdtemp(`${t.config.home}-other-`))
    const paths = await ensureDevCertificate(other, OPERATOR)
    const ca = await readFile(`${t.config.home}/certs/ca.crt`)
    await expectStatus(health(grpcCredentials.createSsl(ca, await readFile(paths.keyFile), await readFile(paths.certFile))), Status.UNAVAILABLE)
  })

  test('handshake failures are logged with their reason, once per reason and window', async () => {
    const ca = await readFile(`${t.config.home}/certs/ca.crt`)
    for (let i = 0; i < 3; i++) await expectStatus(health(grpcCredentials.createSsl(ca)), Status.UNAVAILABLE)
    const handshakes = t.logLines.map((l) => JSON.parse(l) as { msg: string; reason?: string; peer?: string }).filter((l) => l.msg === 'TLS handshake failed')
    assert.ok(handshakes.length >= 1, 'the refusals were logged')
    const reasons = handshakes.map((l) => l.reason)
    assert.equal(new Set(reasons).size, reasons.length, `one line per reason within the window: ${reasons.join(', ')}`)
    assert.ok(reasons.includes('ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE'), `the missing certificate is named: ${reasons.join(', ')}`)
  })

  test('a CA certificate signed by the mesh CA is no identity, whatever URI it carries; a separately issued leaf is', async () => {
    const ca = await readFile(`${t.config.home}/certs/ca.crt`)
    const call = async (paths: { keyFile: string; certFile: string }) => {
      const client = new AccountManagementServiceClient(t.address('account-management'), grpcCredentials.createSsl(ca, await readFile(paths.keyFile), await readFile(paths.certFile)), {
        'grpc.ssl_target_name_override': 'localhost',
      })
      try {
        return await unaryCall(client, 'listCloudAccounts', { pageSize: 1, pageToken: '' }, { deadlineMs: 5000 })
      } finally {
        client.close()
      }
    }
    const asCa = await issueSeparateDevCertificate(t.config.home, OPERATOR, 'as-ca', { asCa: true })
    const refused = await expectStatus(call(asCa), Status.UNAUTHENTICATED, 'CA certificate')
    assert.equal(refused.reason, 'NO_MESH_IDENTITY')
    const leaf = await issueSeparateDevCertificate(t.config.home, OPERATOR, 'leaf')
    await call(leaf)
  })
})

describe('authorization', () => {
  test('a role that is not allowed gets PERMISSION_DENIED and the handler never runs', async () => {
    const terminal = await t.client('account-management', TERMINAL)
    const operator = await t.client('account-management', OPERATOR)
    t.spans.reset()
    const denied = await expectStatus(
      unaryCall(terminal, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'mallory', password: 'long enough password' }),
      Status.PERMISSION_DENIED,
      'terminal/phone-1 may not call cloudpay.account.v1.AccountManagementService/RegisterCloudAccount',
    )
    assert.equal(denied.reason, 'ROLE_NOT_ALLOWED')
    // No server span: the handler wrapper never ran. And nothing was stored.
    assert.equal(t.spans.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER).length, 0)
    await expectStatus(unaryCall(operator, 'getCloudAccount', { accountId: 'mallory' }), Status.NOT_FOUND)
  })

  test('a service may call only the RPCs its rule names it for', async () => {
    const asPaymentManagement = await t.client('account-management', { role: 'service', id: 'payment-management' })
    await expectStatus(
      unaryCall(asPaymentManagement, 'validateLoginToken', { requestId: newRequestId(), loginToken: 'x', deviceId: 'device-1' }),
      Status.PERMISSION_DENIED,
      'service/payment-management may not call',
    )
  })

  test('an instance acts only for its own device id', async () => {
    const operator = await t.client('account-management', OPERATOR)
    await unaryCall(operator, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'carol', password: 'carol password 1' })
    await unaryCall(operator, 'assignInstance', { requestId: newRequestId(), deviceId: 'device-2', accountId: 'carol' })
    const instance = await t.client('account-management', INSTANCE)
    const denied = await expectStatus(unaryCall(instance, 'getInstanceAssignment', { deviceId: 'device-2' }), Status.PERMISSION_DENIED, 'device-1')
    assert.equal(denied.reason, 'NOT_OWN_DEVICE')
    const own = await t.client('account-management', { role: 'instance', id: 'device-2' })
    const reply = await unaryCall(own, 'getInstanceAssignment', { deviceId: 'device-2' })
    assert.equal(reply.assignment?.accountId, 'carol')
  })
})

describe('errors and idempotency', () => {
  test('bad input gets INVALID_ARGUMENT naming every bad field, with BadRequest details', async () => {
    const operator = await t.client('account-management', OPERATOR)
    const { violations, reason } = await expectStatus(
      unaryCall(operator, 'registerCloudAccount', { requestId: 'not-a-uuid', accountId: 'x', password: 'short' }),
      Status.INVALID_ARGUMENT,
      'request_id: must be a UUID',
    )
    assert.equal(reason, 'INVALID_ARGUMENT')
    assert.deepEqual(violations.map((v) => v.field).sort(), ['account_id', 'password', 'request_id'])
  })

  test('a retried request id replays the first answer; reused with other parameters it is refused', async () => {
    const operator = await t.client('account-management', OPERATOR)
    const requestId = newRequestId()
    const first = await unaryCall(operator, 'registerCloudAccount', { requestId, accountId: 'dave', password: 'dave password 1' })
    const retry = await unaryCall(operator, 'registerCloudAccount', { requestId, accountId: 'dave', password: 'dave password 1' })
    assert.deepEqual(retry, first)
    const reused = await expectStatus(
      unaryCall(operator, 'registerCloudAccount', { requestId, accountId: 'erin', password: 'erin password 1' }),
      Status.INVALID_ARGUMENT,
      'request_id',
    )
    assert.equal(reused.reason, 'REQUEST_ID_REUSED')
    await expectStatus(unaryCall(operator, 'getCloudAccount', { accountId: 'erin' }), Status.NOT_FOUND)
    const again = await expectStatus(
      unaryCall(operator, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'dave', password: 'dave password 1' }),
      Status.ALREADY_EXISTS,
    )
    assert.equal(again.reason, 'ACCOUNT_EXISTS')
  })
})

describe('pagination', () => {
  test('ListCloudAccounts pages through every account once, and refuses a foreign token', async () => {
    const operator = await t.client('account-management', OPERATOR)
    for (const id of ['page-a', 'page-b', 'page-c', 'page-d', 'page-e']) {
      await unaryCall(operator, 'registerCloudAccount', { requestId: newRequestId(), accountId: id, password: 'paging password' })
    }
    const seen: string[] = []
    let pageToken = ''
    do {
      const reply = await unaryCall(operator, 'listCloudAccounts', { pageSize: 2, pageToken })
      assert.ok(reply.cloudAccounts.length <= 2)
      seen.push(...reply.cloudAccounts.map((a) => a.accountId))
      pageToken = reply.nextPageToken
    } while (pageToken !== '')
    const pages = seen.filter((id) => id.startsWith('page-'))
    assert.deepEqual(pages, ['page-a', 'page-b', 'page-c', 'page-d', 'page-e'])
    assert.equal(new Set(seen).size, seen.length, 'no account twice')
    const bad = await expectStatus(unaryCall(operator, 'listCloudAccounts', { pageSize: 2, pageToken: 'garbage' }), Status.INVALID_ARGUMENT, 'page_token')
    assert.equal(bad.reason, 'INVALID_PAGE_TOKEN')
    await expectStatus(unaryCall(operator, 'listCloudAccounts', { pageSize: -1, pageToken: '' }), Status.INVALID_ARGUMENT, 'page_size')
  })
})

describe('tracing', () => {
  test('the client span and the server span of a call share one trace, parent to child', async () => {
    const operator = await t.client('app-service', OPERATOR)
    t.spans.reset()
    await unaryCall(operator, 'listCatalogItems', { pageSize: 10, pageToken: '' })
    await t.telemetry.forceFlush()
    const spans = t.spans.getFinishedSpans().filter((s) => s.name === 'cloudpay.app.v1.AppService/ListCatalogItems')
    const client = spans.find((s) => s.kind === SpanKind.CLIENT)
    const server = spans.find((s) => s.kind === SpanKind.SERVER)
    assert.ok(client && server, 'both spans exported')
    assert.equal(server.spanContext().traceId, client.spanContext().traceId)
    assert.equal(server.parentSpanContext?.spanId, client.spanContext().spanId)
    assert.equal(server.resource.attributes['service.name'], 'cloudpay-app-service')
    assert.equal(server.attributes['rpc.system'], 'grpc')
    assert.equal(server.attributes['rpc.grpc.status_code'], Status.OK)
  })

  test("a caller's baggage never becomes span attributes; its traceparent is continued; ids come from the validated request", async () => {
    const operator = await t.client('account-management', OPERATOR)
    await unaryCall(operator, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'baggage-acct', password: 'baggage password 1' })
    await unaryCall(operator, 'assignInstance', { requestId: newRequestId(), deviceId: 'device-bag', accountId: 'baggage-acct' })
    // A client that is not ours: no tracing interceptor, its own traceparent and baggage headers.
    const instance = createClient(AccountManagementServiceClient, t.address('account-management'), await t.credentials({ role: 'instance', id: 'device-bag' }))
    after(() => instance.close())
    const metadata = new Metadata()
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    metadata.set('traceparent', `00-${traceId}-00f067aa0ba902b7-01`)
    metadata.set('baggage', 'cloudpay.order_id=forged-order,cloudpay.device_id=forged-device,cloudpay.platform_id=' + 'x'.repeat(2000))
    t.spans.reset()
    await unaryCall(instance, 'getInstanceAssignment', { deviceId: 'device-bag' }, { metadata })
    await expectStatus(unaryCall(instance, 'getInstanceAssignment', { deviceId: 'y'.repeat(5000) }, { metadata }), Status.INVALID_ARGUMENT)
    await t.telemetry.forceFlush()
    const servers = t.spans.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER)
    assert.equal(servers.length, 2)
    for (const server of servers) {
      assert.equal(server.spanContext().traceId, traceId, 'the traceparent is continued')
      const text = JSON.stringify(server.attributes)
      assert.ok(!text.includes('forged') && !text.includes('xxxx') && !text.includes('yyyy'), text)
    }
    assert.equal(servers[0]!.attributes['cloudpay.device_id'], 'device-bag')
  })

  test('log lines inside a handler carry the trace id', async () => {
    const operator = await t.client('account-management', OPERATOR)
    t.spans.reset()
    await expectStatus(unaryCall(operator, 'getCloudAccount', { accountId: 'nobody-here' }), Status.NOT_FOUND)
    const server = t.spans.getFinishedSpans().find((s) => s.kind === SpanKind.SERVER)
    assert.ok(server)
    const line = t.logLines.map((l) => JSON.parse(l)).findLast((l) => l.rpc === 'cloudpay.account.v1.AccountManagementService/GetCloudAccount' && l.msg === 'rpc finished')
    assert.ok(line, 'an access log line for the call')
    assert.equal(line.trace_id, server.spanContext().traceId)
    // At info, one line per failed call: code, reason, caller, trace id.
    const failed = t.logLines.map((l) => JSON.parse(l)).findLast((l) => l.rpc === 'cloudpay.account.v1.AccountManagementService/GetCloudAccount' && l.msg === 'rpc failed')
    assert.ok(failed, 'a failure line')
    assert.equal(failed.level, 'info')
    assert.deepEqual([failed.code, failed.reason, failed.caller, failed.trace_id], ['NOT_FOUND', 'ACCOUNT_NOT_FOUND', 'operator/test-operator', server.spanContext().traceId])
  })

  test('every log line names its service once (strict JSON parsers refuse duplicate keys)', async () => {
    const duplicated = t.logLines.filter((line) => (line.match(/"service":/g) ?? []).length > 1)
    assert.deepEqual(duplicated.slice(0, 3), [])
    assert.ok(t.logLines.some((line) => line.includes('"service":"account-management"')))
  })
})
