// Two replicas of a service on one database, reached through one target naming both (as a
// dns:/// name resolving to every pod does): calls spread round-robin, and a replica stopping
// loses none of them. A replica listens where LISTEN says; its ADDR names the peers.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AccountManagementServiceClient } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { accountManagement } from '../../services/account-management/server.ts'
import { pushRelay } from '../../services/push-relay/server.ts'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import { ConfigError, loadConfig } from '../../services/runtime/config.ts'
import { createLogger } from '../../services/runtime/logger.ts'
import { startMesh } from '../../services/runtime/process.ts'
import { newRequestId } from '../helpers/grpc.ts'
import { OPERATOR, startTestMesh } from '../helpers/mesh.ts'

test('a target naming both replicas balances calls over them and rides over one stopping', async () => {
  const first = await startTestMesh()
  const shared = { CLOUDPAY_HOME: first.config.home, ...(first.config.databaseUrl ? { DATABASE_URL: first.config.databaseUrl } : {}), CLOUDPAY_SHUTDOWN_GRACE_MS: '2000' }
  const log = createLogger({ level: 'silent', name: 'replica' })
  const firstAddress = first.address('account-management')
  // The second replica binds its own LISTEN address; its ADDR is what its peers would be told.
  const second = await startMesh([accountManagement], {
    config: loadConfig({ ...shared, CLOUDPAY_ACCOUNT_MANAGEMENT_LISTEN: '127.0.0.1:0', CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR: `ipv4:${firstAddress}` }),
    telemetry: first.telemetry,
    log,
  })
  const secondAddress = second.services[0]!.address
  assert.notEqual(secondAddress, firstAddress)
  const target = `ipv4:${firstAddress},${secondAddress}`
  const credentials = await first.credentials(OPERATOR)
  const health = createClient(HealthClient, target, credentials)
  const accounts = createClient(AccountManagementServiceClient, target, credentials)
  try {
    // Tell the replicas apart by what they report (pick_first would send every call to one).
    second.services[0]!.server.health.set('', Serving.NOT_SERVING)
    const seen = new Set<Serving>()
    for (let i = 0; i < 8; i++) seen.add((await unaryCall(health, 'check', { service: '' })).status)
    assert.deepEqual([...seen].sort(), [Serving.SERVING, Serving.NOT_SERVING])

    // Both replicas serve the same accounts (one database); every call succeeds while one stops.
    await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId: 'replicated', password: 'replicated password 1' })
    const stopping = first.mesh.takeDown('account-management')
    const during = Array.from({ length: 20 }, () => unaryCall(accounts, 'getCloudAccount', { accountId: 'replicated' }))
    const bringBack = await stopping
    for (let i = 0; i < 10; i++) assert.equal((await unaryCall(accounts, 'getCloudAccount', { accountId: 'replicated' })).cloudAccount?.accountId, 'replicated')
    for (const call of await Promise.allSettled(during)) assert.equal(call.status, 'fulfilled', String((call as PromiseRejectedResult).reason))
    await bringBack()
  } finally {
    health.close()
    accounts.close()
    await second.stop()
    await first.stop()
  }
})

test('a service whose address names its peers (dns:///) will not start without its own LISTEN address', async () => {
  const first = await startTestMesh({ services: [] })
  try {
    const config = loadConfig({
      CLOUDPAY_HOME: first.config.home,
      ...(first.config.databaseUrl ? { DATABASE_URL: first.config.databaseUrl } : {}),
      CLOUDPAY_PUSH_RELAY_ADDR: 'dns:///push-relay:15056',
    })
    await assert.rejects(
      startMesh([pushRelay], { config, telemetry: first.telemetry, log: createLogger({ level: 'silent', name: 'x' }) }),
      (error: unknown) => error instanceof ConfigError && error.message.startsWith('CLOUDPAY_PUSH_RELAY_LISTEN must be set'),
    )
  } finally {
    await first.stop()
  }
})
