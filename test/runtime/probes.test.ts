// Kubernetes' probes: a plaintext health-only port (readiness follows the service, liveness only
// the process), and a drain in which health says NOT_SERVING while calls are still accepted.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { rm } from 'node:fs/promises'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { credentials as grpcCredentials, type ClientReadableStream, status as Status } from '@grpc/grpc-js'
import { type HealthCheckResponse, HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { createLogger } from '../../services/runtime/logger.ts'
import { type RunningServer, startServer } from '../../services/runtime/server.ts'
import { devPki } from '../helpers/certs.ts'
import { expectStatus } from '../helpers/grpc.ts'

const SERVICE = { role: 'service', id: 'probed' } as const
const CALLER = { role: 'operator', id: 'tester' } as const

let pki: Awaited<ReturnType<typeof devPki>>
const log = createLogger({ level: 'silent', name: 'test' })

before(async () => {
  pki = await devPki(100)
})
after(async () => {
  await rm(pki.home, { recursive: true, force: true })
})

async function probedServer(): Promise<RunningServer> {
  return startServer({ address: '127.0.0.1:0', credentials: await pki.server(SERVICE), log, services: [], healthAddress: '127.0.0.1:0' })
}

test('the probe port answers Check without a certificate: readiness follows the service, liveness only the process', async () => {
  const server = await probedServer()
  assert.ok(server.probePort)
  const probe = new HealthClient(`127.0.0.1:${server.probePort}`, grpcCredentials.createInsecure())
  try {
    assert.equal((await unaryCall(probe, 'check', { service: '' })).status, Serving.SERVING)
    assert.equal((await unaryCall(probe, 'check', { service: 'liveness' })).status, Serving.SERVING)
    // The database away: not ready, but alive (restarting the replica would not bring it back).
    server.health.setAllServing(false)
    assert.equal((await unaryCall(probe, 'check', { service: '' })).status, Serving.NOT_SERVING)
    assert.equal((await unaryCall(probe, 'check', { service: 'liveness' })).status, Serving.SERVING)
    await expectStatus(unaryCall(probe, 'check', { service: 'cloudpay.nope.v1.Nope' }), Status.NOT_FOUND)
    // Only Check: no long-lived stream for anyone on the network, and nothing else is served there.
    const watch = probe.watch({ service: '' })
    const code = await new Promise<number>((resolve) => watch.on('error', (e: { code: number }) => resolve(e.code)).on('data', () => undefined))
    assert.equal(code, Status.UNIMPLEMENTED)
  } finally {
    probe.close()
    await server.shutdown(1000)
  }
  // The probe port closes with the server.
  const gone = new HealthClient(`127.0.0.1:${server.probePort}`, grpcCredentials.createInsecure())
  try {
    await expectStatus(unaryCall(gone, 'check', { service: 'liveness' }, { deadlineMs: 2000 }), Status.UNAVAILABLE)
  } finally {
    gone.close()
  }
})

test('draining: health goes NOT_SERVING while calls are still accepted, then the server stops', async () => {
  const server = await probedServer()
  const address = `127.0.0.1:${server.port}`
  const watcher = new HealthClient(address, await pki.client(CALLER), { 'grpc.ssl_target_name_override': 'localhost' })
  const probe = new HealthClient(`127.0.0.1:${server.probePort}`, grpcCredentials.createInsecure())
  let watch: ClientReadableStream<HealthCheckResponse> | undefined
  try {
    watch = watcher.watch({ service: '' })
    const statuses: Serving[] = []
    let serving!: () => void
    const watching = new Promise<void>((resolve) => (serving = resolve))
    const notServing = new Promise<void>((resolve) =>
      watch!.on('data', (m: HealthCheckResponse) => {
        statuses.push(m.status)
        if (m.status === Serving.SERVING) serving()
        if (m.status === Serving.NOT_SERVING) resolve()
      }),
    )
    watch.on('error', () => undefined)
    await watching
    const drained = server.drain(3_000)
    await notServing
    assert.deepEqual(statuses, [Serving.SERVING, Serving.NOT_SERVING])
    // Told, and still accepting: a call on a new connection during the drain is answered.
    const late = new HealthClient(address, await pki.client(CALLER), { 'grpc.ssl_target_name_override': 'localhost' })
    try {
      assert.equal((await unaryCall(late, 'check', { service: '' })).status, Serving.NOT_SERVING)
    } finally {
      late.close()
    }
    assert.equal((await unaryCall(probe, 'check', { service: '' })).status, Serving.NOT_SERVING)
    assert.equal((await unaryCall(probe, 'check', { service: 'liveness' })).status, Serving.SERVING)
    await drained
    watch.cancel()
    await server.shutdown(1000)
    const after = new HealthClient(address, await pki.client(CALLER), { 'grpc.ssl_target_name_override': 'localhost' })
    try {
      await expectStatus(unaryCall(after, 'check', { service: '' }, { deadlineMs: 2000 }), Status.UNAVAILABLE)
    } finally {
      after.close()
    }
  } finally {
    watch?.cancel()
    watcher.close()
    probe.close()
    await server.shutdown(1000)
  }
})

test('Health Watch streams of one caller are bounded: one more is RESOURCE_EXHAUSTED, another caller is served, an ended one frees its place', async () => {
  const server = await startServer({ address: '127.0.0.1:0', credentials: await pki.server(SERVICE), log, services: [], maxStreamsPerCaller: 3 })
  const address = `127.0.0.1:${server.port}`
  const client = new HealthClient(address, await pki.client(CALLER), { 'grpc.ssl_target_name_override': 'localhost' })
  const other = new HealthClient(address, await pki.client({ role: 'operator', id: 'someone-else' }), { 'grpc.ssl_target_name_override': 'localhost' })
  const streams: ClientReadableStream<HealthCheckResponse>[] = []
  /** A Watch that resolves with its first status, or with the status it ended with. */
  const watch = (on: HealthClient) => {
    const stream = on.watch({ service: '' })
    streams.push(stream)
    return new Promise<{ serving: boolean; code?: Status; reason?: string }>((resolve) => {
      stream.on('data', () => resolve({ serving: true }))
      stream.on('error', (error: { code: Status; metadata?: { get(key: string): unknown[] } }) => resolve({ serving: false, code: error.code }))
    })
  }
  try {
    for (let i = 0; i < 3; i++) assert.deepEqual(await watch(client), { serving: true })
    const refused = await watch(client)
    assert.equal(refused.code, Status.RESOURCE_EXHAUSTED, 'the fourth of one caller is refused')
    assert.deepEqual(await watch(other), { serving: true }, 'another caller is not held back')
    streams[0]!.cancel()
    // Freed once the server saw the cancel: retried until the place is free (what a client does on RESOURCE_EXHAUSTED).
    let again = await watch(client)
    for (let i = 0; i < 50 && !again.serving; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      again = await watch(client)
    }
    assert.deepEqual(again, { serving: true }, 'an ended stream frees its place')
  } finally {
    for (const stream of streams) stream.cancel()
    client.close()
    other.close()
    await server.shutdown(1_000)
  }
})

test('a fixed port held for a moment by another socket is bound once it is free', async () => {
  // A port taken by someone else (on loopback, an outgoing connection can hold a port of the ephemeral range).
  const holder = createNetServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  const port = (holder.address() as AddressInfo).port
  const freed = new Promise<void>((resolve) => setTimeout(() => holder.close(() => resolve()), 600))
  const server = await startServer({ address: `127.0.0.1:${port}`, credentials: await pki.server(SERVICE), log, services: [] })
  try {
    await freed
    assert.equal(server.port, port, 'bound to the port asked for, once it was free')
    const client = new HealthClient(`127.0.0.1:${port}`, await pki.client(CALLER), { 'grpc.ssl_target_name_override': 'localhost' })
    try {
      assert.equal((await unaryCall(client, 'check', { service: '' })).status, Serving.SERVING)
    } finally {
      client.close()
    }
  } finally {
    await server.shutdown(1000)
  }
})
