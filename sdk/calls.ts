// What both sides of the SDK share: one call = one request id kept across retries, retried on
// UNAVAILABLE and DEADLINE_EXCEEDED with backoff (cloudpay's mutations are idempotent under their
// request id, so a retry never acts twice), cancelled by an AbortSignal, and refusals turned into
// one typed error carrying the gRPC code, the ErrorInfo reason and the field violations.
import { randomUUID } from 'node:crypto'
import { Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import type { Event, InstanceEventsServiceClient, TerminalEvent } from '../gen/cloudpay/events/v1/instance_events_service.ts'
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
    /** The status metadata as it came (ErrorInfo, BadRequest, retry info), when the server sent it. */
    readonly metadata: Metadata = new Metadata(),
    /** When the server asked to be tried again (RetryInfo), if it did. */
    readonly retryAfterMs?: number,
  ) {
    super(message)
    this.name = 'CloudpayCallError'
  }

  /** The status message, named as grpc-js names it. */
  get details(): string {
    return this.message
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

/** Before the n-th retry: doubling from 100 ms up to 2 s, jittered to half or more, so clients do not return in step. */
const backoffMs = (n: number): number => Math.min(2_000, 100 * 2 ** Math.min(n - 1, 5)) * (0.5 + Math.random() / 2)

function asCallError(error: unknown): unknown {
  const service = error as ServiceError
  if (typeof service?.code !== 'number' || !('details' in service)) return error
  const { reason, violations, retryAfterMs } = statusDetailsOf(service.metadata)
  return new CloudpayCallError(service.code, reason ?? Status[service.code] ?? 'UNKNOWN', service.details, violations, service.metadata, retryAfterMs)
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
      await new Promise((resolve) => setTimeout(resolve, backoffMs(n)))
    }
  }
}

/** A unary call of a generated client as one step; `request` gets the step's request id. */
export function callStep<C, K extends UnaryKeys<C>>(client: C, method: K, request: (requestId: string) => RequestOf<C[K]>, options: StepOptions = {}): Promise<ResponseOf<C[K]>> {
  return step((requestId, signal) => unaryCall(client, method, request(requestId), { signal, deadlineMs: options.deadlineMs }), options)
}

/** A server stream of sequenced events, as Notify and FollowTerminal are. */
export interface EventStream<E> {
  on(event: 'data', listener: (message: { event?: E }) => void): unknown
  on(event: 'error', listener: (error: ServiceError) => void): unknown
  on(event: 'end', listener: () => void): unknown
  cancel(): void
}

/** One open subscription: events arrive once, in order, across stream breaks. */
export interface EventFollower<E> {
  /**
   * The earliest event received and not taken yet that `match` picks, or the first one still to
   * come; taken, so the next call finds the one after it. Rejects on abort or when the server
   * ends the subscription for good (a refusal: the channel closed, the terminal was removed).
   */
  next(match: (event: E) => boolean, options?: { signal?: AbortSignal }): Promise<E>
  close(): void
}

/** Events kept for a later `next` at most; older unclaimed ones are dropped first. */
const FOLLOWER_BUFFER = 1_000

/**
 * Follows a durable event stream from `afterSequence`: it stays open until closed, and after a
 * break (UNAVAILABLE, the server shutting down) resumes after the last sequence it saw, so no
 * event is missed or seen twice. A refusal ends it and is what every waiting `next` gets.
 */
export function followEvents<E extends { sequence: bigint }>(open: (afterSequence: bigint) => EventStream<E>, afterSequence = 0n): EventFollower<E> {
  const received: E[] = []
  const waiters = new Set<() => void>()
  let last = afterSequence
  let failure: unknown
  let closed = false
  let current: EventStream<E> | undefined
  let breaks = 0
  const wake = (): void => {
    for (const waiter of [...waiters]) waiter()
  }
  const connect = (): void => {
    if (closed) return
    let stream: EventStream<E>
    try {
      stream = open(last)
    } catch (error) {
      // The client itself was closed: nothing will reconnect it.
      failure = error
      return wake()
    }
    current = stream
    let ended = false
    const broken = (error?: ServiceError): void => {
      if (ended || closed) return
      ended = true
      const mapped = error === undefined ? undefined : asCallError(error)
      if (mapped instanceof CloudpayCallError && !RETRIED.has(mapped.code)) {
        failure = mapped
        return wake()
      }
      breaks++
      // A stopping replica says when to come back (spread across its subscribers); else back off with jitter.
      const asked = mapped instanceof CloudpayCallError ? mapped.retryAfterMs : undefined
      setTimeout(connect, asked ?? backoffMs(breaks)).unref()
    }
    stream.on('data', (message) => {
      const event = message.event
      if (!event || event.sequence <= last) return
      last = event.sequence
      breaks = 0
      received.push(event)
      if (received.length > FOLLOWER_BUFFER) received.shift()
      wake()
    })
    stream.on('error', (error) => broken(error))
    stream.on('end', () => broken())
  }
  connect()
  return {
    next(match, options = {}) {
      return new Promise<E>((resolve, reject) => {
        const signal = options.signal
        const settle = (): void => {
          const index = received.findIndex(match)
          if (index >= 0) {
            finish()
            return resolve(received.splice(index, 1)[0]!)
          }
          if (signal?.aborted) return finish(), reject(signal.reason)
          if (failure !== undefined) return finish(), reject(failure)
          if (closed) return finish(), reject(new CloudpayCallError(Status.CANCELLED, 'FOLLOWER_CLOSED', 'the subscription was closed', []))
        }
        const finish = (): void => {
          waiters.delete(settle)
          signal?.removeEventListener('abort', settle)
        }
        waiters.add(settle)
        signal?.addEventListener('abort', settle, { once: true })
        settle()
      })
    },
    close() {
      if (closed) return
      closed = true
      current?.cancel()
      wake()
    },
  }
}

/** A device's pipe (Notify), followed as `followEvents` does. */
export function followDevice(events: InstanceEventsServiceClient, deviceId: string, afterSequence = 0n): EventFollower<Event> {
  return followEvents<Event>((after) => events.notify({ deviceId, afterSequence: after }, new Metadata()), afterSequence)
}

/** The calling terminal's own stream (FollowTerminal), followed as `followEvents` does. */
export function followTerminal(events: InstanceEventsServiceClient, afterSequence = 0n): EventFollower<TerminalEvent> {
  return followEvents<TerminalEvent>((after) => events.followTerminal({ afterSequence: after }, new Metadata()), afterSequence)
}
