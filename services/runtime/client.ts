// Clients of mesh services: mutual TLS, a client span per call with the trace context injected
// into the metadata, deliberate channel limits, and promise-returning calls that always carry a
// deadline.
import { context, propagation, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api'
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type Interceptor,
  InterceptingCall,
  Metadata,
  type ServiceError,
  status as Status,
} from '@grpc/grpc-js'
import { MESSAGE_LIMIT_BYTES } from './limits.ts'

export const DEFAULT_DEADLINE_MS = 10_000

/**
 * Every cloudpay RPC is safe to repeat (mutations are idempotent under their request_id, the rest
 * only read), so every client retries UNAVAILABLE itself, as real clients do: a peer restarting,
 * a replica gone, the database away for a moment. Reconnecting starts fast and backs off.
 */
export const RETRY_SERVICE_CONFIG = {
  methodConfig: [
    {
      name: [{}],
      retryPolicy: { maxAttempts: 5, initialBackoff: '0.1s', maxBackoff: '2s', backoffMultiplier: 2, retryableStatusCodes: ['UNAVAILABLE'] },
    },
  ],
}

/**
 * round_robin for a target naming every replica (dns:///name:port, ipv4:a,b): calls spread over
 * all of them and skip one that is down (grpc-js's default pick_first pins everything to one). A
 * single host:port has nothing to balance and keeps pick_first, because grpc-js 1.14.7's
 * round_robin leaks a connection when it drops its children (on close or a new address list):
 * resetSubchannelList destroys each child while still iterating them, the destroyed child reports
 * IDLE and is told to exitIdle, so it reconnects; its certificate watcher then keeps the process alive.
 */
export const BALANCED_SERVICE_CONFIG = { loadBalancingConfig: [{ round_robin: {} }], ...RETRY_SERVICE_CONFIG }

/** Whether a target names replicas to balance over, rather than one host:port. */
export const namesReplicas = (target: string): boolean => /^(dns|ipv4|ipv6):/.test(target)

export const CLIENT_CHANNEL_OPTIONS: ChannelOptions = {
  'grpc.service_config': JSON.stringify(RETRY_SERVICE_CONFIG),
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5_000,
  'grpc.max_receive_message_length': MESSAGE_LIMIT_BYTES,
  'grpc.max_send_message_length': MESSAGE_LIMIT_BYTES,
  // Detect dead peers on idle long-lived streams (Notify) within ~40 s.
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  // dns:/// targets: replicas that come up are found within seconds (grpc-js waits 30 s by default).
  'grpc.dns_min_time_between_resolutions_ms': 5_000,
  // HTTP/2's default 64 KiB connection window stalls a channel that multiplexes many streams
  // (thousands of Notify subscribers share a few channels): one event to 1,000 of them is
  // ~170 KB, and the server would wait a round trip per 64 KiB for WINDOW_UPDATE.
  'grpc-node.flow_control_window': 1 << 20,
}

type ClientConstructor<T> = new (address: string, credentials: ChannelCredentials, options?: Partial<ChannelOptions>) => T

export function createClient<T>(Client: ClientConstructor<T>, address: string, credentials: ChannelCredentials, tracer?: Tracer, options: ChannelOptions = {}): T {
  const interceptors = tracer ? [tracingInterceptor(tracer)] : []
  // A loopback IP as TLS server name draws Node's RFC 6066 warning; the dev certificates name it localhost.
  const loopback = isLoopbackTarget(address) ? { 'grpc.ssl_target_name_override': 'localhost' } : {}
  const balanced = namesReplicas(address) ? { 'grpc.service_config': JSON.stringify(BALANCED_SERVICE_CONFIG) } : {}
  return new Client(address, credentials, { ...CLIENT_CHANNEL_OPTIONS, ...balanced, ...loopback, ...options, interceptors })
}

/** 127.0.0.1:1, or a static replica list of loopback addresses (ipv4:127.0.0.1:1,127.0.0.1:2). */
function isLoopbackTarget(target: string): boolean {
  const addresses = target.replace(/^ipv[46]:/, '').split(',')
  return addresses.every((address) => /^(127\.\d+\.\d+\.\d+|\[::1\]):\d+$/.test(address))
}

/** A client span per call; its context travels to the server as `traceparent` metadata. */
export function tracingInterceptor(tracer: Tracer): Interceptor {
  return (options, nextCall) => {
    const name = options.method_definition.path.slice(1)
    const [service, method] = name.split('/') as [string, string]
    const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method } })
    const spanContext = trace.setSpan(context.active(), span)
    return new InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        propagation.inject(spanContext, metadata, { set: (carrier, key, value) => carrier.set(key, value) })
        next(metadata, {
          onReceiveStatus(status, nextStatus) {
            span.setAttribute('rpc.grpc.status_code', status.code)
            if (status.code !== Status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: status.details })
            span.end()
            nextStatus(status)
          },
        })
      },
    })
  }
}

type UnaryMethod<Req, Res> = (request: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (error: ServiceError | null, response: Res) => void) => ClientUnaryCall

export type UnaryKeys<C> = { [K in keyof C]: C[K] extends UnaryMethod<infer _Req, infer _Res> ? K : never }[keyof C]
export type RequestOf<F> = F extends UnaryMethod<infer Req, infer _Res> ? Req : never
export type ResponseOf<F> = F extends UnaryMethod<infer _Req, infer Res> ? Res : never

export interface CallSettings {
  /** Deadline from now; defaults to DEFAULT_DEADLINE_MS. */
  readonly deadlineMs?: number
  readonly metadata?: Metadata
  readonly signal?: AbortSignal
}

/** Calls a unary RPC of a generated client and resolves with its response (rejects with a ServiceError). */
export function unaryCall<C, K extends UnaryKeys<C>>(client: C, method: K, request: RequestOf<C[K]>, settings: CallSettings = {}): Promise<ResponseOf<C[K]>> {
  const fn = client[method] as unknown as UnaryMethod<RequestOf<C[K]>, ResponseOf<C[K]>>
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + (settings.deadlineMs ?? DEFAULT_DEADLINE_MS))
    const call = fn.call(client, request, settings.metadata ?? new Metadata(), { deadline }, (error, response) => {
      settings.signal?.removeEventListener('abort', cancel)
      if (error) reject(error)
      else resolve(response)
    })
    const cancel = (): void => call.cancel()
    settings.signal?.addEventListener('abort', cancel, { once: true })
  })
}
