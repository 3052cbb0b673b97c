// Domain errors and their one mapping to gRPC statuses (AIP-193): every deliberate error carries a
// code, a message naming the field or resource, and google.rpc.Status details (ErrorInfo with an
// UPPER_SNAKE reason, BadRequest field violations, RetryInfo). A value the database refused is
// INVALID_ARGUMENT, a database out of reach UNAVAILABLE; anything else becomes INTERNAL. Every
// text that leaves is bounded: trailers are HTTP/2 headers, and a peer that cannot take a huge
// one stalls the whole connection it shares with other calls.
import { Metadata, status as Status, type StatusObject } from '@grpc/grpc-js'
import { Any } from '../../gen/google/protobuf/any.ts'
import { BadRequest, ErrorInfo, RetryInfo } from '../../gen/google/rpc/error_details.ts'
import { Status as RpcStatus } from '../../gen/google/rpc/status.ts'
import { databaseFaultOf } from './database-errors.ts'

export const ERROR_DOMAIN = 'cloudpay.local'
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin'

/** Bounds of what a status carries (characters); longer texts are cut with an ellipsis. */
export const STATUS_LIMITS = { message: 512, field: 128, description: 256, violations: 16, metadataValue: 128, metadataEntries: 16 } as const

/** `text` cut to `max` characters, never inside a surrogate pair. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text
  const cut = /[\uD800-\uDBFF]/.test(text[max - 2] ?? '') ? max - 2 : max - 1
  return `${text.slice(0, cut)}…`
}

/** A request value for a message: quoted, with controls escaped, and only its first few dozen characters. */
export function quote(value: string, max = 40): string {
  return JSON.stringify(truncate(value, max))
}

export interface FieldViolation {
  /** The request field, by its proto name (`device_id`, `amount.currency_code`). */
  readonly field: string
  readonly description: string
  /** UPPER_SNAKE reason of this violation, when more precise than INVALID_ARGUMENT (INVALID_PAGE_TOKEN). */
  readonly reason?: string
}

export abstract class CloudpayError extends Error {
  abstract readonly code: Status
  constructor(
    /** UPPER_SNAKE reason for ErrorInfo, stable for clients to switch on. */
    readonly reason: string,
    message: string,
    readonly metadata: Readonly<Record<string, string>> = {},
  ) {
    super(message)
    this.name = new.target.name
  }
}

export class InvalidArgumentError extends CloudpayError {
  readonly code = Status.INVALID_ARGUMENT
  /** The reason defaults to the violations' own when they all agree on one. */
  constructor(
    readonly violations: readonly FieldViolation[],
    reason = commonReason(violations),
    message?: string,
  ) {
    super(reason, message ?? violations.slice(0, STATUS_LIMITS.violations).map((v) => `${truncate(v.field, STATUS_LIMITS.field)}: ${truncate(v.description, STATUS_LIMITS.description)}`).join('; '))
  }
  static field(field: string, description: string, reason?: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description, reason }])
  }
}

function commonReason(violations: readonly FieldViolation[]): string {
  const reasons = new Set(violations.map((v) => v.reason))
  const [only] = reasons
  return reasons.size === 1 && only !== undefined ? only : 'INVALID_ARGUMENT'
}

export class NotFoundError extends CloudpayError {
  readonly code = Status.NOT_FOUND
}
export class AlreadyExistsError extends CloudpayError {
  readonly code = Status.ALREADY_EXISTS
}
export class FailedPreconditionError extends CloudpayError {
  readonly code = Status.FAILED_PRECONDITION
}
export class PermissionDeniedError extends CloudpayError {
  readonly code = Status.PERMISSION_DENIED
}
export class UnauthenticatedError extends CloudpayError {
  readonly code = Status.UNAUTHENTICATED
}
export class AbortedError extends CloudpayError {
  readonly code = Status.ABORTED
}
/** The caller's deadline had passed before any work was done for it. */
export class DeadlineExceededError extends CloudpayError {
  readonly code = Status.DEADLINE_EXCEEDED
}
export class UnavailableError extends CloudpayError {
  readonly code = Status.UNAVAILABLE
  constructor(
    reason: string,
    message: string,
    /** When to come back (RetryInfo): a draining replica spreads its subscribers' returns. */
    readonly retryAfterMs?: number,
  ) {
    super(reason, message)
  }
}
export class UnimplementedError extends CloudpayError {
  readonly code = Status.UNIMPLEMENTED
  constructor(method: string) {
    super('NOT_IMPLEMENTED_YET', `${method} is not implemented yet`)
  }
}
export class ResourceExhaustedError extends CloudpayError {
  readonly code = Status.RESOURCE_EXHAUSTED
  constructor(
    reason: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(reason, message)
  }
}

/** A status ready for grpc-js: code, message, and details in the trailers. */
export type ServiceStatus = StatusObject

export function isCloudpayError(error: unknown): error is CloudpayError {
  return error instanceof CloudpayError
}

/** Maps any thrown value to a status. Unexpected errors are INTERNAL with a generic message. */
export function toServiceStatus(error: unknown): { status: ServiceStatus; unexpected: boolean } {
  if (isCloudpayError(error)) return { status: statusOf(error), unexpected: false }
  // Still logged as unexpected: each is a gap in validation or an outage someone must look at.
  const fault = databaseFaultOf(error)
  if (fault === 'invalid-value') return { status: statusOf(new InvalidValueError()), unexpected: true }
  if (fault === 'unavailable') return { status: statusOf(new UnavailableError('DATABASE_UNAVAILABLE', 'the database is unavailable; retry later with the same request_id')), unexpected: true }
  const details = encodeDetails(Status.INTERNAL, 'internal error', [errorInfoAny('INTERNAL', {})])
  return { status: { code: Status.INTERNAL, details: 'internal error', metadata: details }, unexpected: true }
}

/** A value the database refused (out of range, malformed); which one is not said: the message echoes no input. */
class InvalidValueError extends CloudpayError {
  readonly code = Status.INVALID_ARGUMENT
  constructor() {
    super('INVALID_VALUE', 'a value in the request is out of range or malformed for this operation')
  }
}

function statusOf(error: CloudpayError): ServiceStatus {
  const message = truncate(error.message, STATUS_LIMITS.message)
  const anys = [errorInfoAny(error.reason, error.metadata)]
  if (error instanceof InvalidArgumentError) {
    const badRequest = BadRequest.fromPartial({
      fieldViolations: error.violations.slice(0, STATUS_LIMITS.violations).map((v) => ({
        field: truncate(v.field, STATUS_LIMITS.field),
        description: truncate(v.description, STATUS_LIMITS.description),
        reason: v.reason ?? error.reason,
      })),
    })
    anys.push(Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.BadRequest', value: Buffer.from(BadRequest.encode(badRequest).finish()) }))
  }
  if ((error instanceof ResourceExhaustedError || error instanceof UnavailableError) && error.retryAfterMs !== undefined) {
    const ms = Math.max(0, Math.ceil(error.retryAfterMs))
    const retry = RetryInfo.fromPartial({ retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } })
    anys.push(Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: Buffer.from(RetryInfo.encode(retry).finish()) }))
  }
  return { code: error.code, details: message, metadata: encodeDetails(error.code, message, anys) }
}

function errorInfoAny(reason: string, metadata: Readonly<Record<string, string>>): Any {
  const bounded = Object.entries(metadata)
    .slice(0, STATUS_LIMITS.metadataEntries)
    .map(([key, value]) => [truncate(key, STATUS_LIMITS.field), truncate(value, STATUS_LIMITS.metadataValue)])
  const info = ErrorInfo.fromPartial({ reason: truncate(reason, STATUS_LIMITS.field), domain: ERROR_DOMAIN, metadata: Object.fromEntries(bounded) })
  return Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from(ErrorInfo.encode(info).finish()) })
}

function encodeDetails(code: Status, message: string, details: Any[]): Metadata {
  const metadata = new Metadata()
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(RpcStatus.encode({ code, message, details }).finish()))
  return metadata
}

/** Client side: reads the ErrorInfo reason (and its metadata) and field violations from a failed call's trailers. */
export function statusDetailsOf(metadata: Metadata | undefined): { reason?: string; violations: FieldViolation[]; info?: Record<string, string>; retryAfterMs?: number } {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0]
  if (!raw || typeof raw === 'string') return { violations: [] }
  const rpcStatus = RpcStatus.decode(raw)
  let reason: string | undefined
  let info: Record<string, string> | undefined
  let retryAfterMs: number | undefined
  const violations: FieldViolation[] = []
  for (const any of rpcStatus.details) {
    if (any.typeUrl.endsWith('/google.rpc.ErrorInfo')) ({ reason, metadata: info } = ErrorInfo.decode(any.value))
    if (any.typeUrl.endsWith('/google.rpc.BadRequest')) {
      for (const v of BadRequest.decode(any.value).fieldViolations) violations.push({ field: v.field, description: v.description })
    }
    if (any.typeUrl.endsWith('/google.rpc.RetryInfo')) {
      const delay = RetryInfo.decode(any.value).retryDelay
      if (delay) retryAfterMs = Number(delay.seconds) * 1000 + Math.round(delay.nanos / 1_000_000)
    }
  }
  return { reason, violations, info, retryAfterMs }
}
