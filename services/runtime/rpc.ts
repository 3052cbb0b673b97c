// Turns plain async handler functions into grpc-js handlers: a server span continuing the caller's
// trace, the caller's identity, cancellation as an AbortSignal, and every rejection mapped to a
// status (grpc-js would otherwise crash the process on an async handler's rejection). No handler
// sees a request the root screen refuses (request-screen.ts): undecodable, or unsafe in any field.
import { context, type Context, propagation, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, type TextMapGetter, trace, type Tracer } from '@opentelemetry/api'
import type { Metadata, ServerUnaryCall, ServerWritableStream, UntypedServiceImplementation, sendUnaryData } from '@grpc/grpc-js'
import { status as Status } from '@grpc/grpc-js'
import { admittedPeerOf } from './authz.ts'
import { DeadlineExceededError, type InvalidArgumentError, isCloudpayError, toServiceStatus, UnauthenticatedError, UnimplementedError } from './errors.ts'
import { formatIdentity, type Identity, identityFromPeerCertificate } from './identity.ts'
import type { Logger } from './logger.ts'
import type { Fingerprinter } from './sealing.ts'
import { isSecretField } from './secrets.ts'
import { refusalOf, requestSchemaOf } from './request-screen.ts'
import { endWithStatus } from './streams.ts'
import { SERVICE_TRACER } from './telemetry.ts'

export interface RpcContext {
  readonly caller: Identity
  /** "pkg.Service/Method" */
  readonly method: string
  readonly log: Logger
  readonly span: Span
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal: AbortSignal
  /** The caller's verified certificate (DER), for checking what it signed. */
  readonly peerCertificate: Buffer | undefined
  /** Keyed hashes under the data key: page tokens and idempotency fingerprints. */
  readonly fingerprints: Fingerprinter
}

interface MethodDefinition {
  readonly path: string
  readonly requestStream: boolean
  readonly responseStream: boolean
}
type RequestOf<M> = M extends { requestDeserialize(value: Buffer): infer R } ? R : never
type ResponseOf<M> = M extends { responseSerialize(value: infer R): Buffer } ? R : never

export type UnaryHandler<Req, Res> = (request: Req, ctx: RpcContext) => Promise<Res>
export type ServerStreamHandler<Req, Res> = (request: Req, ctx: RpcContext, stream: ServerWritableStream<Req, Res>) => Promise<void>

/** The handler functions a service provides: one per RPC of its generated definition. */
export type Handlers<Definition> = {
  readonly [Method in keyof Definition]: Definition[Method] extends { responseStream: true }
    ? ServerStreamHandler<RequestOf<Definition[Method]>, ResponseOf<Definition[Method]>>
    : UnaryHandler<RequestOf<Definition[Method]>, ResponseOf<Definition[Method]>>
}

export interface HandlerRuntime {
  readonly tracer: Tracer
  readonly log: Logger
  /** The data key's keyed hashes (ServiceDeps passes its Sealer). */
  readonly sealer: Fingerprinter
}

/** A handler for an RPC whose flow has not landed yet: answers UNIMPLEMENTED with a clear message. */
export function notImplemented(method: string): () => Promise<never> {
  return async () => {
    throw new UnimplementedError(method)
  }
}

const metadataGetter: TextMapGetter<Metadata> = {
  get: (carrier, key) => {
    const values = carrier.get(key)
    return values.length === 0 ? undefined : values.map(String)
  },
  keys: (carrier) => Object.keys(carrier.getMap()),
}

export function implement<Definition extends Record<string, MethodDefinition>>(
  definition: Definition,
  handlers: Handlers<Definition>,
  runtime: HandlerRuntime,
): UntypedServiceImplementation {
  const implementation: UntypedServiceImplementation = {}
  for (const [key, method] of Object.entries(definition)) {
    const handler = handlers[key as keyof Definition] as unknown as (request: unknown, ctx: RpcContext, stream?: unknown) => Promise<unknown>
    if (method.requestStream) throw new Error(`${method.path}: client streaming is not supported by implement()`)
    requestSchemaOf(method.path) // fails at start-up, not per call, if the image lacks the RPC
    implementation[key] = method.responseStream ? serverStreaming(method.path, handler, runtime) : unary(method.path, handler, runtime)
  }
  return implementation
}

interface Started {
  caller: Identity | null
  /** Undefined when the peer has no mesh identity (the authorization interceptor refuses those first). */
  ctx: RpcContext | undefined
  /** Set when the request must not reach the handler. */
  refusal: InvalidArgumentError | undefined
  activeContext: Context
  finish(error?: unknown): ReturnType<typeof toServiceStatus>['status'] | undefined
}

function begin(path: string, call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>, runtime: HandlerRuntime): Started {
  const name = path.slice(1)
  const [service, rpc] = name.split('/') as [string, string]
  // Admitted by the authorization interceptor: the certificate and identity it already read.
  const admitted = admittedPeerOf(call.metadata)
  const peer = admitted?.certificate ?? call.getAuthContext().sslPeerCertificate
  const caller = admitted?.identity ?? identityFromPeerCertificate(peer)
  // Any caller's traceparent is continued (its spans join the caller's trace); baggage, which
  // becomes span attributes, is taken only from the mesh's own services.
  const extracted = propagation.extract(ROOT_CONTEXT, call.metadata, metadataGetter)
  const parent = caller?.role === 'service' ? extracted : propagation.deleteBaggage(extracted)
  const span = runtime.tracer.startSpan(
    name,
    {
      kind: SpanKind.SERVER,
      attributes: { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': rpc, ...(caller ? { 'cloudpay.caller': formatIdentity(caller) } : {}) },
    },
    parent,
  )
  const refusal = refusalOf(path, call.request)
  // A refused request's values go nowhere: not into span attributes, not into baggage.
  const tags = refusal ? {} : tagsOfRequest(call.request)
  for (const [attribute, value] of Object.entries(tags)) span.setAttribute(attribute, value)
  const abort = new AbortController()
  call.on('cancelled', () => abort.abort(new Error('cancelled by the client')))
  // A deadline already past when the call begins (grpc-timeout 0n, a clock far behind): the client
  // has its DEADLINE_EXCEEDED; nothing is done for it (it went on, and committed, unseen).
  const deadline = Number(call.getDeadline())
  if (call.cancelled || (Number.isFinite(deadline) && deadline <= Date.now())) abort.abort(new Error('the deadline passed before the call began'))
  const started = Date.now()
  // The call's logger is made when something logs (a failure, a handler's line): most calls log nothing.
  let callLog: Logger | undefined
  const logOf = (): Logger => (callLog ??= runtime.log.child({ rpc: name, caller: caller ? formatIdentity(caller) : undefined }))
  return {
    caller,
    refusal,
    ctx: caller
      ? {
          caller,
          method: name,
          get log() {
            return logOf()
          },
          span,
          signal: abort.signal,
          peerCertificate: peer?.raw,
          fingerprints: runtime.sealer,
        }
      : undefined,
    // The ids also ride as baggage, so spans the handler causes (calls, queries, other services) carry them.
    activeContext: withBaggageEntries(trace.setSpan(parent, span), tags).setValue(SERVICE_TRACER, runtime.tracer),
    finish(error?: unknown) {
      let status: ReturnType<typeof toServiceStatus>['status'] | undefined
      if (error === undefined) {
        span.setAttribute('rpc.grpc.status_code', Status.OK)
      } else {
        const mapped = toServiceStatus(error)
        status = mapped.status
        span.setAttribute('rpc.grpc.status_code', status.code)
        const log = logOf()
        if (mapped.unexpected) {
          log.error({ err: error }, 'unexpected error in handler')
          span.recordException(error instanceof Error ? error : new Error(String(error)))
        }
        // One line per failed call where operators look (info), with what a dashboard joins on.
        log.info(
          { code: Status[status.code], reason: isCloudpayError(error) ? error.reason : 'INTERNAL', ms: Date.now() - started, trace_id: span.spanContext().traceId },
          'rpc failed',
        )
        // A client's mistake is not the server's error (OTel rpc conventions): only server faults mark the span.
        if (mapped.unexpected || [Status.INTERNAL, Status.UNAVAILABLE, Status.DATA_LOSS, Status.UNKNOWN, Status.DEADLINE_EXCEEDED].includes(status.code)) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: status.details })
        }
      }
      span.end()
      if (runtime.log.isLevelEnabled('debug')) logOf().debug({ code: status?.code ?? Status.OK, ms: Date.now() - started }, 'rpc finished')
      return status
    },
  }
}

/**
 * Ids a request names (never secrets) become span attributes: the device, order, platform, login.
 * The span starts before the handler validates, so only values of an id's shape are taken.
 */
/** The shape of every id we tag with (device ids, UUIDs, base64url login ids may start with '-' or '_'). */
const TAG_VALUE = /^[A-Za-z0-9._-]{1,128}$/
const REQUEST_TAGS: Record<string, string> = { deviceId: 'cloudpay.device_id', orderId: 'cloudpay.order_id', platformId: 'cloudpay.platform_id', loginId: 'cloudpay.login_id' }
function tagsOfRequest(request: unknown): Record<string, string> {
  const tags: Record<string, string> = {}
  if (!request || typeof request !== 'object') return tags
  // The one secret list decides: were a secret field ever named here, it is never tagged (checked
  // per tag field, not by copying the whole request on every call).
  for (const [field, attribute] of Object.entries(REQUEST_TAGS)) {
    if (isSecretField(field)) continue
    const value = (request as Record<string, unknown>)[field]
    if (typeof value === 'string' && TAG_VALUE.test(value)) tags[attribute] = value
  }
  return tags
}

function withBaggageEntries(base: Context, entries: Record<string, string>): Context {
  if (Object.keys(entries).length === 0) return base
  let baggage = propagation.getBaggage(base) ?? propagation.createBaggage()
  for (const [key, value] of Object.entries(entries)) baggage = baggage.setEntry(key, { value })
  return propagation.setBaggage(base, baggage)
}

function unary(path: string, handler: (request: unknown, ctx: RpcContext) => Promise<unknown>, runtime: HandlerRuntime) {
  return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>): void => {
    const started = begin(path, call, runtime)
    const { activeContext, finish } = started
    context.with(activeContext, () => {
      run(started, (verified) => handler(call.request, verified)).then(
        (response) => {
          finish()
          callback(null, response)
        },
        (error: unknown) => callback(finish(error)!),
      )
    })
  }
}

function serverStreaming(path: string, handler: (request: unknown, ctx: RpcContext, stream: unknown) => Promise<unknown>, runtime: HandlerRuntime) {
  return (call: ServerWritableStream<unknown, unknown>): void => {
    const started = begin(path, call, runtime)
    const { activeContext, finish } = started
    context.with(activeContext, () => {
      run(started, (verified) => handler(call.request, verified, call)).then(
        () => {
          finish()
          if (!call.cancelled) call.end()
        },
        (error: unknown) => {
          const status = finish(error)!
          if (!call.cancelled) endWithStatus(call, status)
        },
      )
    })
  }
}

async function run<T>({ ctx, refusal }: Started, work: (ctx: RpcContext) => Promise<T>): Promise<T> {
  if (!ctx) throw new UnauthenticatedError('NO_MESH_IDENTITY', 'the client certificate carries no valid mesh identity')
  if (refusal) throw refusal
  if (ctx.signal.aborted) throw new DeadlineExceededError('CALL_ENDED', 'the call ended (its deadline passed, or its client cancelled) before its handler began')
  return work(ctx)
}
