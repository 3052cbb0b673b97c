// A grpc-js server as every service runs it: mutual TLS, the authorization interceptor, health,
// reflection from the real descriptors, deliberate limits, and a graceful shutdown.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import { Server, type ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js'
import { ANY_MESH_IDENTITY, authorizationInterceptor, type Rule } from './authz.ts'
import { HEALTH_SERVICE, healthDefinition, HealthRegistry } from './health.ts'
import {
  MAX_CONCURRENT_STREAMS,
  MAX_CONNECTION_IDLE_MS,
  MAX_HEADER_LIST_BYTES,
  MAX_STREAMS_PER_CALLER,
  MESSAGE_LIMIT_BYTES,
  REQUEST_ARRIVAL_MS,
  SERVER_KEEPALIVE_TIME_MS,
  SERVER_KEEPALIVE_TIMEOUT_MS,
} from './limits.ts'
import { logHandshakeFailures } from './handshake-log.ts'
import { startProbeServer } from './probe-server.ts'
import type { Logger } from './logger.ts'
import { readableRequests } from './request-screen.ts'
import { encodeStreamedMessagesOnce } from './streams.ts'
import { boundRequestArrival, screenCallHeaders, transportRefusals } from './transport-screen.ts'
import { DescriptorPool, REFLECTION_SERVICES, reflectionHandler, reflectionV1AlphaDefinition, reflectionV1Definition } from './reflection.ts'
import { rememberPeerCertificates } from './tls.ts'
import { StreamQuota } from './stream-quota.ts'
import { bindPatiently } from './bind.ts'

/** One gRPC service hosted by a server. */
export interface HostedService {
  /** Full proto name, e.g. cloudpay.account.v1.AccountManagementService. */
  readonly protoName: string
  readonly definition: Record<string, { path: string }>
  readonly implementation: UntypedServiceImplementation
  /** Authorization rule per method path; a path without one is denied. */
  readonly rules: ReadonlyMap<string, Rule>
}

export interface ServerOptions {
  readonly address: string
  readonly credentials: ServerCredentials
  readonly services: readonly HostedService[]
  readonly log: Logger
  readonly descriptors?: DescriptorPool
  /** A plaintext health-only port for Kubernetes probes (probe-server.ts); none when undefined. */
  readonly healthAddress?: string
  /** How long a one-message request may take to arrive (limits.ts REQUEST_ARRIVAL_MS; tests shorten it). */
  readonly requestArrivalMs?: number
  /** Health Watch streams one caller may hold at once (CLOUDPAY_MAX_STREAMS_PER_CALLER; limits.ts by default). */
  readonly maxStreamsPerCaller?: number
}

export interface RunningServer {
  readonly port: number
  readonly health: HealthRegistry
  /** The health-only probe port, when one was asked for. */
  readonly probePort: number | undefined
  /**
   * Health says NOT_SERVING for good, then waits `delayMs` while calls are still accepted, so
   * readiness probes and balancers move traffic away before connections are refused.
   */
  drain(delayMs: number): Promise<void>
  /** Stops accepting calls, lets in-flight ones finish for up to graceMs, then cuts the rest. */
  shutdown(graceMs: number): Promise<void>
}

let sharedPool: DescriptorPool | undefined

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  rememberPeerCertificates()
  const pool = options.descriptors ?? (sharedPool ??= DescriptorPool.load())
  const served = options.services.map((s) => s.protoName)
  for (const name of served) if (!pool.hasService(name)) throw new Error(`${name} is missing from the descriptor image; run npm run generate`)
  const health = new HealthRegistry(served, new StreamQuota(options.maxStreamsPerCaller ?? MAX_STREAMS_PER_CALLER))

  const rules = new Map<string, Rule>()
  for (const service of options.services) for (const [path, rule] of service.rules) rules.set(path, rule)
  for (const definition of [healthDefinition, reflectionV1Definition, reflectionV1AlphaDefinition]) {
    for (const method of Object.values(definition)) rules.set(method.path, ANY_MESH_IDENTITY)
  }

  const server = new Server({
    'grpc.max_receive_message_length': MESSAGE_LIMIT_BYTES,
    'grpc.max_send_message_length': MESSAGE_LIMIT_BYTES,
    'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS,
    'grpc.keepalive_time_ms': SERVER_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': SERVER_KEEPALIVE_TIMEOUT_MS,
    'grpc.max_connection_idle_ms': MAX_CONNECTION_IDLE_MS,
    interceptors: [
      // First, so it wraps grpc-js's own call: its refusals about a request are made precise.
      transportRefusals,
      authorizationInterceptor(rules, {
        onDenied: (path, identity, reason, { code, traceId }) =>
          options.log.warn({ rpc: path.slice(1), caller: identity ? `${identity.role}/${identity.id}` : null, code, reason, trace_id: traceId }, 'call denied'),
      }),
    ],
  })
  limitRequestHeaders(server, MAX_HEADER_LIST_BYTES)
  // Every deserializer made total: a body that does not decode reaches the handler wrapper as an
  // UnreadableRequest, refused as INVALID_ARGUMENT (grpc-js would answer INTERNAL).
  const add = (definition: unknown, implementation: UntypedServiceImplementation) =>
    server.addService(readableRequests(definition as ServiceDefinition), implementation)
  for (const service of options.services) add(encodeStreamedMessagesOnce(service.definition as unknown as ServiceDefinition), service.implementation)
  add(healthDefinition, health.handlers())
  const requestArrivalMs = options.requestArrivalMs ?? REQUEST_ARRIVAL_MS
  const reflect = reflectionHandler(pool, [...served, HEALTH_SERVICE, ...REFLECTION_SERVICES], requestArrivalMs)
  add(reflectionV1Definition, { serverReflectionInfo: reflect })
  add(reflectionV1AlphaDefinition, { serverReflectionInfo: reflect })

  const port = await bindPatiently(server, options.address, options.credentials, options.log)
  // Reflection's requests come one by one over a long stream (its handler bounds the wait for each); every other RPC sends one message at once.
  const streamsRequests = new Set<string>([reflectionV1Definition, reflectionV1AlphaDefinition].flatMap((definition) => Object.values(definition).map((method) => method.path)))
  screenEveryCall(server, streamsRequests, requestArrivalMs)
  logHandshakeFailures(server, options.log)
  const probe = options.healthAddress ? await startProbeServer(options.healthAddress, health) : undefined

  let draining: Promise<void> | undefined
  let stopping: Promise<void> | undefined
  return {
    port,
    health,
    probePort: probe?.port,
    drain(delayMs) {
      draining ??= new Promise<void>((resolve) => {
        health.setAllNotServing()
        if (delayMs > 0) options.log.info({ drain_ms: delayMs }, 'draining: not serving, still accepting calls')
        setTimeout(resolve, delayMs)
      })
      return draining
    },
    shutdown(graceMs) {
      stopping ??= new Promise<void>((resolve) => {
        health.setAllNotServing()
        const timer = setTimeout(() => server.forceShutdown(), graceMs)
        server.tryShutdown(() => {
          clearTimeout(timer)
          resolve()
        })
      }).then(() => probe?.close())
      return stopping
    },
  }
}

/**
 * Each call passes the transport screen before grpc-js sees it: its headers through
 * screenCallHeaders (its deadline from grpc-timeout wraps past 2^31 ms), and, unless its RPC
 * streams requests, a bound on its request's arrival. A listener put ahead of grpc-js's own on
 * every HTTP/2 server it bound receives the same stream and headers (test/mesh/hostile-transport.test.ts).
 */
function screenEveryCall(server: Server, streamsRequests: ReadonlySet<string>, requestArrivalMs: number): void {
  const internals = server as unknown as {
    http2Servers?: Map<{ prependListener(event: 'stream', listener: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): void }, unknown>
  }
  if (!internals.http2Servers || internals.http2Servers.size === 0) throw new Error('grpc-js internals changed: no http2Servers to screen calls on')
  for (const http2Server of internals.http2Servers.keys()) {
    http2Server.prependListener('stream', (stream, headers) => {
      screenCallHeaders(headers)
      if (!streamsRequests.has(String(headers[':path']))) boundRequestArrival(stream, requestArrivalMs)
    })
  }
}

/**
 * Calls whose headers (metadata) exceed `bytes` are reset at once with ENHANCE_YOUR_CALM (the
 * client sees RESOURCE_EXHAUSTED) and other streams of the connection go on; without a limit a
 * 64 KiB value reached the handler and ~240 KB closed the whole connection. grpc-js has no
 * option for HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE, so its http2 server options are amended
 * (test/runtime/server.test.ts checks the behaviour).
 */
function limitRequestHeaders(server: Server, bytes: number): void {
  const internals = server as unknown as { commonServerOptions?: { settings?: Record<string, unknown> } }
  if (!internals.commonServerOptions) throw new Error('grpc-js internals changed: no commonServerOptions to limit request headers with')
  internals.commonServerOptions.settings = { ...internals.commonServerOptions.settings, maxHeaderListSize: bytes }
}
