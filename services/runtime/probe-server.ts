// A plaintext port serving only grpc.health.v1 Check, for Kubernetes' built-in gRPC probes (the
// kubelet cannot present a client certificate). It tells nothing but serving status, so it needs
// no identity; everything else stays behind mutual TLS on the service's own port.
//   service ""          readiness: what the mTLS port says (NOT_SERVING while the database is
//                       away or the replica drains), so traffic moves elsewhere
//   service "liveness"  SERVING while the process answers at all: a database outage must not
//                       make Kubernetes restart every replica
import { Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition, type sendUnaryData, status as Status } from '@grpc/grpc-js'
import type { HealthCheckRequest, HealthCheckResponse } from '../../gen/grpc/health/v1/health.ts'
import { healthDefinition, type HealthRegistry, ServingStatus } from './health.ts'
import { readableRequests } from './request-screen.ts'
import { endWithStatus } from './streams.ts'
import { bindPatiently } from './bind.ts'

export const LIVENESS_SERVICE = 'liveness'

export interface ProbeServer {
  readonly port: number
  close(): Promise<void>
}

export async function startProbeServer(address: string, health: HealthRegistry): Promise<ProbeServer> {
  const server = new Server({
    'grpc.max_receive_message_length': 1024,
    'grpc.max_concurrent_streams': 8,
    'grpc.max_connection_idle_ms': 60_000,
  })
  const { check } = health.handlers()
  server.addService(readableRequests(healthDefinition as unknown as ServiceDefinition), {
    check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
      if (call.request?.service === LIVENESS_SERVICE) return callback(null, { status: ServingStatus.SERVING })
      check(call, callback)
    },
    // Probes only Check; a Watch stream would be a resource anyone on the network could hold open.
    watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) =>
      endWithStatus(call, { code: Status.UNIMPLEMENTED, details: 'Watch is served on the mTLS port only', metadata: call.metadata }),
  })
  const port = await bindPatiently(server, address, ServerCredentials.createInsecure())
  return {
    port,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  }
}
