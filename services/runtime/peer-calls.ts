// Calls from one service to another: a deadline tied to the caller's own call, and the peer's
// answer relayed faithfully where it is about the request (bad token, not found...), as
// UNAVAILABLE where the peer could not answer, and as an internal fault otherwise.
import { type ServiceError, status as Status } from '@grpc/grpc-js'
import { CloudpayError, statusDetailsOf, UnavailableError } from './errors.ts'

/** Codes that describe the request itself, so the original caller should see them. */
const RELAYED = new Set([
  Status.INVALID_ARGUMENT,
  Status.NOT_FOUND,
  Status.ALREADY_EXISTS,
  Status.FAILED_PRECONDITION,
  Status.UNAUTHENTICATED,
  Status.RESOURCE_EXHAUSTED,
  Status.ABORTED,
])

export class RelayedError extends CloudpayError {
  constructor(
    readonly code: Status,
    reason: string,
    message: string,
    metadata: Readonly<Record<string, string>> = {},
  ) {
    super(reason, message, metadata)
  }
}

/**
 * A peer's answer that is not about the original caller's request (PERMISSION_DENIED: this
 * service may not do that; INTERNAL...): an internal fault to the caller, but with the peer's code
 * kept, so a retrying loop (the outbox) can tell a refusal no retry will change from an outage.
 */
export class PeerError extends Error {
  constructor(
    readonly peer: string,
    readonly code: Status,
    details: string,
  ) {
    super(`${peer} answered ${Status[code]}: ${details}`)
    this.name = 'PeerError'
  }
}

export interface PeerCallOptions {
  /**
   * PERMISSION_DENIED reasons that are about the request, not about who called (a wrong payment
   * password the peer checked for the original caller): relayed like the codes above.
   */
  readonly relayDenials?: readonly string[]
}

function isServiceError(error: unknown): error is ServiceError {
  return typeof (error as ServiceError)?.code === 'number' && 'details' in (error as object)
}

export async function callPeer<T>(peer: string, call: Promise<T>, options: PeerCallOptions = {}): Promise<T> {
  try {
    return await call
  } catch (error) {
    if (!isServiceError(error)) throw error
    const { reason, info } = statusDetailsOf(error.metadata)
    if (RELAYED.has(error.code) || (error.code === Status.PERMISSION_DENIED && reason !== undefined && options.relayDenials?.includes(reason))) {
      throw new RelayedError(error.code, reason ?? Status[error.code], error.details, info)
    }
    if (error.code === Status.UNAVAILABLE || error.code === Status.DEADLINE_EXCEEDED || error.code === Status.CANCELLED) {
      throw new UnavailableError('PEER_UNAVAILABLE', `${peer} did not answer (${Status[error.code]}); retry with the same request_id`)
    }
    throw new PeerError(peer, error.code, error.details)
  }
}
