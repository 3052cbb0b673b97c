// What both sides of the SDK share: one call = one request id kept across retries, retried on
// UNAVAILABLE and DEADLINE_EXCEEDED with backoff (cloudpay's mutations are idempotent under their
// request id, so a retry never acts twice), cancelled by an AbortSignal, and refusals turned into
// one typed error carrying the gRPC code, the ErrorInfo reason and the field violations.
import { randomUUID } from 'node:crypto'
import { Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import type { Event, InstanceEventsServiceClient, NotifyResponse } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { type RequestOf, type ResponseOf, unaryCall, type UnaryKeys } from '../services/runtime/client.ts'
import type { ServiceName } from '../services/runtime/config.ts'
import { type FieldViolation, statusDetailsOf } from '../services/runtime/errors.ts'
import type { Identity } from '../services/runtime/identity.ts'
import type { ClientOf } from '../services/runtime/peers.ts'

/** Generated clients of the mesh authenticated as one party (the demo's, the tests', your own). */
export interface MeshClients {
  client<Name extends ServiceName>(name: Name, identity: Identity): Promise<ClientOf<Name>>
}

/** A refusal or failure from cloudpay: the gRPC code, the ErrorInfo reason, the fields it names. */
export class CloudpayCallError extends Error {
  constructor(
    readonly code: Status,
    readonly reason: string,
    message: string,
    readonly violations: readonly FieldViolation[],
  ) {
    super(message)
    this.name = 'CloudpayCallError'
  }
}

export interface StepOptions {
  readonly signal?: AbortSignal
  /** How long each attempt may take. */
  readonly deadlineMs?: number
  /** Attempts in all (the first and its retries). */
  readonly attempts?: number
}

const RETRIED = new Set([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED])

function asCallError(error: unknown): unknown {
  const service = error as ServiceError
  if (typeof service?.code !== 'number' || !('details' in service)) return error
  const { reason, violations } = statusDetailsOf(service.metadata)
  return new CloudpayCallError(service.code, reason ?? Status[service.code] ?? 'UNKNOWN', service.details, violations)
}

/**
 * Runs one step: `attempt(requestId)` with the same request id on every try until it answers,
 * refuses (thrown as CloudpayCallError), the attempts run out or the signal aborts.
 */
export async function step<T>(attempt: (requestId: string, signal?: AbortSignal) => Promise<T>, options: StepOptions = {}): Promise<T> {
  const requestId = randomUUID()
  const attempts = options.attempts ?? 5
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted()
    try {
      return await attempt(requestId, options.signal)
    } catch (error) {
      const mapped = asCallError(error)
      if (!(mapped instanceof CloudpayCallError) || !RETRIED.has(mapped.code) || n >= attempts || options.signal?.aborted) throw mapped
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** (n - 1)) * (0.5 + Math.random() / 2)))
    }
  }
}

/** A unary call of a generated client as one step; `request` gets the step's request id. */
export function callStep<C, K extends UnaryKeys<C>>(client: C, method: K, request: (requestId: string) => RequestOf<C[K]>, options: StepOptions = {}): Promise<ResponseOf<C[K]>> {
  return step((requestId, signal) => unaryCall(client, method, request(requestId), { signal, deadlineMs: options.deadlineMs }), options)
}

/**
 * Follows a device's Notify stream until `match` picks an event (resuming after the last
 * sequence seen if the stream breaks). Resolves with the event; rejects on abort or a refusal.
 */
export async function waitForEvent(
  events: InstanceEventsServiceClient,
  deviceId: string,
  match: (event: Event) => boolean,
  options: { signal?: AbortSignal; afterSequence?: bigint } = {},
): Promise<Event> {
  let after = options.afterSequence ?? 0n
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted()
    try {
      return await new Promise<Event>((resolve, reject) => {
        const call = events.notify({ deviceId, afterSequence: after }, new Metadata())
        const abort = (): void => call.cancel()
        options.signal?.addEventListener('abort', abort, { once: true })
        const done = (settle: () => void): void => {
          options.signal?.removeEventListener('abort', abort)
          settle()
        }
        call.on('data', (message: NotifyResponse) => {
          if (!message.event) return
          after = message.event.sequence
          if (match(message.event)) {
            done(() => resolve(message.event!))
            call.cancel()
          }
        })
        call.on('error', (error: ServiceError) => done(() => reject(error.code === Status.CANCELLED && options.signal?.aborted ? options.signal.reason : asCallError(error))))
        call.on('end', () => done(() => reject(new CloudpayCallError(Status.UNAVAILABLE, 'STREAM_ENDED', 'the stream ended', []))))
      })
    } catch (error) {
      if (!(error instanceof CloudpayCallError) || !RETRIED.has(error.code) || n >= 20) throw error
      await new Promise((resolve) => setTimeout(resolve, Math.min(2_000, 100 * 2 ** (n - 1))))
    }
  }
}
