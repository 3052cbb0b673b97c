// grpc.health.v1.Health: the whole server ("") and each hosted service report SERVING while they
// can work (NOT_SERVING while their database is unreachable) until the server starts shutting
// down; Watch streams every change until the client cancels.
import { type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, status as Status } from '@grpc/grpc-js'
import { EventEmitter } from 'node:events'
import { type HealthCheckRequest, type HealthCheckResponse, HealthCheckResponse_ServingStatus as ServingStatus, HealthService } from '../../gen/grpc/health/v1/health.ts'
import { quote, ResourceExhaustedError, toServiceStatus } from './errors.ts'
import { identityFromPeerCertificate } from './identity.ts'
import { refusalOf } from './request-screen.ts'
import type { StreamQuota } from './stream-quota.ts'
import { endWithStatus } from './streams.ts'

export { ServingStatus }
export const HEALTH_SERVICE = 'grpc.health.v1.Health'
export const healthDefinition = HealthService

export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>()
  private readonly changes = new EventEmitter()

  /** `watchers`: how many Watch streams one caller may hold here (none counted when absent: the probe port has no Watch). */
  constructor(
    services: readonly string[],
    private readonly watchers?: StreamQuota,
  ) {
    this.changes.setMaxListeners(0)
    this.statuses.set('', ServingStatus.SERVING)
    for (const service of services) this.statuses.set(service, ServingStatus.SERVING)
  }

  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status)
    this.changes.emit('change', service)
  }

  private shuttingDown = false

  /** Every service, and the server as a whole, stops serving for good (shutdown began). */
  setAllNotServing(): void {
    this.shuttingDown = true
    for (const service of this.statuses.keys()) this.set(service, ServingStatus.NOT_SERVING)
  }

  /** What the server can do right now (its database reachable or not); shutdown always wins. */
  setAllServing(serving: boolean): void {
    if (this.shuttingDown) return
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING
    for (const service of this.statuses.keys()) if (this.statuses.get(service) !== status) this.set(service, status)
  }

  /** The hosted services (not the whole-server entry ""). */
  servingServices(): string[] {
    return [...this.statuses.keys()].filter((name) => name !== '')
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service)
  }

  handlers() {
    return {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) => {
        const refusal = refusalOf(HealthService.check.path, call.request)
        if (refusal) return callback(toServiceStatus(refusal).status)
        const status = this.get(call.request.service)
        if (status === undefined) callback({ code: Status.NOT_FOUND, details: `service ${quote(call.request.service)} is not served here` })
        else callback(null, { status })
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const refusal = refusalOf(HealthService.watch.path, call.request)
        if (refusal) return endWithStatus(call, toServiceStatus(refusal).status)
        // Bounded per caller like every long-lived stream: one certificate cannot hold thousands open.
        const caller = identityFromPeerCertificate(call.getAuthContext().sslPeerCertificate)
        let release = (): void => {}
        if (this.watchers && caller) {
          try {
            release = this.watchers.admit(caller)
          } catch (error) {
            if (error instanceof ResourceExhaustedError) return endWithStatus(call, toServiceStatus(error).status)
            throw error
          }
        }
        const service = call.request.service
        let last: ServingStatus | undefined
        const send = (): void => {
          const status = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN
          if (status !== last) {
            last = status
            call.write({ status })
          }
        }
        const onChange = (changed: string): void => {
          if (changed === service) send()
        }
        this.changes.on('change', onChange)
        const stop = (): void => {
          this.changes.off('change', onChange)
          release()
        }
        call.on('cancelled', stop)
        call.on('close', stop)
        send()
      },
    }
  }
}
