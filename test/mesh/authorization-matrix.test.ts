// Every cell of the authorization matrix (services/authorization-matrix.ts, docs/authorization.md)
// called over real mTLS: a caller the rule does not name is refused before any handler runs; a
// caller it names reaches the handler, which answers with something precise (never INTERNAL).
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { Client, Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import { readFile } from 'node:fs/promises'
import { matrixCells, matrixMarkdown } from '../../services/authorization-matrix.ts'
import { createClient } from '../../services/runtime/client.ts'
import { statusDetailsOf } from '../../services/runtime/errors.ts'
import { formatIdentity, type Identity } from '../../services/runtime/identity.ts'
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts'

let t: TestMesh
before(async () => {
  t = await startTestMesh()
})
after(async () => t?.stop())

/** Calls a method with an empty request (raw bytes, as a client that is not ours would) and returns its status. */
function callRaw(client: Client, path: string, responseStream: boolean): Promise<{ code: Status; reason?: string; details: string }> {
  const passThrough = (value: Buffer): Buffer => value
  const deadline = new Date(Date.now() + 10_000)
  return new Promise((resolve) => {
    const settle = (error: ServiceError | null) =>
      resolve(error ? { code: error.code, details: error.details, reason: statusDetailsOf(error.metadata).reason } : { code: Status.OK, details: '' })
    if (!responseStream) {
      client.makeUnaryRequest(path, passThrough, passThrough, Buffer.alloc(0), new Metadata(), { deadline }, (error) => settle(error))
      return
    }
    const stream = client.makeServerStreamRequest(path, passThrough, passThrough, Buffer.alloc(0), new Metadata(), { deadline })
    stream.on('data', () => stream.cancel())
    stream.on('error', (error: ServiceError) => settle(error))
    stream.on('end', () => settle(null))
  })
}

test('every RPC x every caller: refused exactly where the matrix says, and never INTERNAL where admitted', async () => {
  const clients = new Map<string, Client>()
  const clientFor = async (service: string, caller: Identity): Promise<Client> => {
    const key = `${service} ${formatIdentity(caller)}`
    let client = clients.get(key)
    if (!client) clients.set(key, (client = createClient(Client, t.address(service as never), await t.credentials(caller))))
    return client
  }
  const wrong: string[] = []
  try {
    const cells = matrixCells()
    assert.ok(cells.length >= 48 * 8, `${cells.length} cells`)
    for (const cell of cells) {
      const outcome = await callRaw(await clientFor(cell.service.name, cell.caller), cell.method.path, cell.method.responseStream)
      const where = `${cell.method.path.slice(1)} as ${formatIdentity(cell.caller)}`
      const refusedByRole = outcome.code === Status.PERMISSION_DENIED && outcome.reason === 'ROLE_NOT_ALLOWED'
      if (!cell.allowed && !refusedByRole) wrong.push(`${where}: expected ROLE_NOT_ALLOWED, got ${Status[outcome.code]} ${outcome.reason ?? ''}`)
      if (cell.allowed && refusedByRole) wrong.push(`${where}: admitted by the matrix but refused by role`)
      if (cell.allowed && [Status.INTERNAL, Status.UNKNOWN, Status.DEADLINE_EXCEEDED].includes(outcome.code)) wrong.push(`${where}: ${Status[outcome.code]} ${outcome.details}`)
    }
  } finally {
    for (const client of clients.values()) client.close()
  }
  assert.deepEqual(wrong, [])
})

test('docs/authorization.md is the matrix the code enforces', async () => {
  assert.equal(await readFile(new URL('../../docs/authorization.md', import.meta.url), 'utf8'), matrixMarkdown(), 'run npm run -s docs:authorization')
})

test('the trust rules of the design, cell by cell: who may not ask about channels, read the pipe, or say an order took effect', async () => {
  const expectations: [string, Identity, boolean][] = [
    ['/cloudpay.events.v1.InstanceEventsService/CheckChannel', { role: 'service', id: 'app-service' }, false],
    ['/cloudpay.events.v1.InstanceEventsService/CheckChannel', { role: 'service', id: 'payment-platform' }, false],
    ['/cloudpay.events.v1.InstanceEventsService/CheckChannel', { role: 'service', id: 'payment-management' }, true],
    ['/cloudpay.events.v1.InstanceEventsService/ListEvents', { role: 'operator', id: 'o' }, false],
    ['/cloudpay.events.v1.InstanceEventsService/Publish', { role: 'service', id: 'payment-platform' }, false],
    ['/cloudpay.payment.v1.PaymentManagementService/ReportPaymentResult', { role: 'service', id: 'app-service' }, false],
    ['/cloudpay.payment.v1.PaymentManagementService/AuthorizeTerminal', { role: 'terminal', id: 'p' }, false],
    ['/cloudpay.app.v1.AppService/FulfilOrder', { role: 'service', id: 'payment-management' }, true],
    ['/cloudpay.app.v1.AppService/FulfilOrder', { role: 'operator', id: 'o' }, false],
    ['/cloudpay.account.v1.AccountManagementService/ValidateLoginToken', { role: 'service', id: 'payment-management' }, false],
    ['/cloudpay.account.v1.AccountManagementService/RegisterCloudAccount', { role: 'service', id: 'app-service' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/Pay', { role: 'operator', id: 'o' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/RefundTransaction', { role: 'operator', id: 'o' }, false],
    // Offline codes: the back office registers payees but never redeems; only terminals provision.
    ['/cloudpay.platform.v1.PaymentPlatformService/RegisterPayee', { role: 'terminal', id: 'p' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/RedeemOfflineCode', { role: 'operator', id: 'o' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/RedeemOfflineCode', { role: 'instance', id: 'd' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/ProvisionOfflineCredential', { role: 'service', id: 'payment-management' }, false],
    ['/cloudpay.platform.v1.PaymentPlatformService/ListOfflineRedemptions', { role: 'operator', id: 'o' }, false],
    ['/cloudpay.events.v1.InstanceEventsService/PublishToTerminals', { role: 'service', id: 'payment-platform' }, true],
  ]
  const cells = matrixCells()
  for (const [path, caller, allowed] of expectations) {
    const cell = cells.find((c) => c.method.path === path && c.caller.role === caller.role && (caller.role !== 'service' || c.caller.id === caller.id))
    assert.ok(cell, path)
    assert.equal(cell.allowed, allowed, `${path} as ${formatIdentity(caller)}`)
  }
})
