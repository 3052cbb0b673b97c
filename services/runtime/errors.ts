// Domain errors and their one mapping to gRPC statuses (AIP-193): every deliberate error carries a
// code, a message naming the field or resource, and google.rpc.Status details (ErrorInfo with an
// UPPER_SNAKE reason, BadRequest field violations, RetryInfo). Anything else becomes INTERNAL.
import { Metadata, status as Status, type StatusObject } from '@grpc/grpc-js'
import { Any } from '../../gen/google/protobuf/any.ts'
import { BadRequest, ErrorInfo, RetryInfo } from '../../gen/google/rpc/error_details.ts'
import { Status as RpcStatus } from '../../gen/google/rpc/status.ts'

export const ERROR_DOMAIN = 'cloudpay.local'
export const STATUS_DETAILS_KEY = 'grpc-status-details-bin'

export interface FieldViolation {
  /** The request field, by its proto name (`device_id`, `amount.currency_code`). */
  readonly field: string
  readonly description: string
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
  constructor(
    readonly violations: readonly FieldViolation[],
    reason = 'INVALID_ARGUMENT',
  ) {
    super(reason, violations.map((v) => `${v.field}: ${v.description}`).join('; '))
  }
  static field(field: string, description: string, reason?: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description }], reason)
  }
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
export class UnavailableError extends CloudpayError {
  readonly code = Status.UNAVAILABLE
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
  if (!isCloudpayError(error)) {
    const details = encodeDetails(Status.INTERNAL, 'internal error', [errorInfoAny('INTERNAL', {})])
    return { status: { code: Status.INTERNAL, details: 'internal error', metadata: details }, unexpected: true }
  }
  const anys = [errorInfoAny(error.reason, error.metadata)]
  if (error instanceof InvalidArgumentError) {
    const badRequest = BadRequest.fromPartial({
      fieldViolations: error.violations.map((v) => ({ field: v.field, description: v.description, reason: error.reason })),
    })
    anys.push(Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.BadRequest', value: Buffer.from(BadRequest.encode(badRequest).finish()) }))
  }
  if (error instanceof ResourceExhaustedError && error.retryAfterMs !== undefined) {
    const ms = Math.max(0, Math.ceil(error.retryAfterMs))
    const retry = RetryInfo.fromPartial({ retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 } })
    anys.push(Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: Buffer.from(RetryInfo.encode(retry).finish()) }))
  }
  return {
    status: { code: error.code, details: error.message, metadata: encodeDetails(error.code, error.message, anys) },
    unexpected: false,
  }
}

function errorInfoAny(reason: string, metadata: Readonly<Record<string, string>>): Any {
  const info = ErrorInfo.fromPartial({ reason, domain: ERROR_DOMAIN, metadata: { ...metadata } })
  return Any.fromPartial({ typeUrl: 'type.googleapis.com/google.rpc.ErrorInfo', value: Buffer.from(ErrorInfo.encode(info).finish()) })
}

function encodeDetails(code: Status, message: string, details: Any[]): Metadata {
  const metadata = new Metadata()
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(RpcStatus.encode({ code, message, details }).finish()))
  return metadata
}

/** Client side: reads the ErrorInfo reason and field violations from a failed call's trailers. */
export function statusDetailsOf(metadata: Metadata | undefined): { reason?: string; violations: FieldViolation[] } {
  const raw = metadata?.get(STATUS_DETAILS_KEY)[0]
  if (!raw || typeof raw === 'string') return { violations: [] }
  const rpcStatus = RpcStatus.decode(raw)
  let reason: string | undefined
  const violations: FieldViolation[] = []
  for (const any of rpcStatus.details) {
    if (any.typeUrl.endsWith('/google.rpc.ErrorInfo')) reason = ErrorInfo.decode(any.value).reason
    if (any.typeUrl.endsWith('/google.rpc.BadRequest')) {
      for (const v of BadRequest.decode(any.value).fieldViolations) violations.push({ field: v.field, description: v.description })
    }
  }
  return { reason, violations }
}
