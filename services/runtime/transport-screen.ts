// What grpc-js itself decides about a call before any handler or interceptor of ours sees it,
// made precise. grpc-js 1.14 reads `grpc-timeout` with an unanchored pattern and `| 0`: a
// deadline past 2^31 ms (~24.8 days, a "no real deadline" a client may well ask for) wraps to a
// negative or random timer, so the call ended DEADLINE_EXCEEDED at once while its handler went
// on; nine digits were read as eight. It answers a malformed timeout and a body that does not
// decompress with INTERNAL, and an unsupported grpc-encoding with the whole header echoed.
// Headers are screened before grpc-js reads them (screenCallHeaders, on the HTTP/2 'stream'
// event) and its refusals rewritten on their way out (transportRefusals, the first interceptor).
// grpc-js also waits for ever for a request that never arrives; boundRequestArrival ends that.
import { constants as http2, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { Metadata, type ServerInterceptor, ServerInterceptingCall, type StatusObject, status as Status } from '@grpc/grpc-js'
import { InvalidArgumentError, toServiceStatus } from './errors.ts'

/** The longest deadline grpc-js can keep (its timer is a signed 32-bit count of milliseconds), in a unit the header can carry. */
export const LONGEST_DEADLINE_HEADER = '2147483S'
const LONGEST_DEADLINE_MS = 2_147_483_000
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 }
/** gRPC over HTTP/2: TimeoutValue is 1-8 ASCII digits, then exactly one unit. */
const TIMEOUT = /^(\d{1,8})([HMSmun])$/
/** A value grpc-js refuses as a timeout; its refusal is rewritten below. */
const UNREADABLE_TIMEOUT = 'unreadable'

/**
 * Makes `grpc-timeout` something grpc-js reads as meant: a deadline beyond what it can keep
 * becomes the longest it can (the client still holds its own), one outside the specification a
 * value grpc-js refuses. Mutates the headers object grpc-js is handed next.
 */
export function screenCallHeaders(headers: IncomingHttpHeaders): void {
  const timeout = headers['grpc-timeout']
  if (timeout === undefined) return
  const match = TIMEOUT.exec(String(timeout))
  if (!match) headers['grpc-timeout'] = UNREADABLE_TIMEOUT
  else if (Number(match[1]) * UNIT_MS[match[2]!]! > LONGEST_DEADLINE_MS) headers['grpc-timeout'] = LONGEST_DEADLINE_HEADER
}

/** grpc-js's own refusals about a request, by the message it writes, and what the caller is told instead. */
const REWRITES: { readonly code: Status; readonly details: RegExp; readonly refusal: () => StatusObject }[] = [
  {
    code: Status.INTERNAL,
    details: /^Invalid grpc-timeout value/,
    refusal: () => refusal('grpc-timeout', 'must be 1-8 digits and one unit of H, M, S, m, u or n (gRPC over HTTP/2)', 'MALFORMED_REQUEST'),
  },
  {
    code: Status.INTERNAL,
    details: /^Failed to decompress message$/,
    refusal: () => refusal('', 'the request message does not decompress with the grpc-encoding it names', 'MALFORMED_REQUEST'),
  },
  {
    // The status stays (gRPC says UNIMPLEMENTED); only the echo of the header goes.
    code: Status.UNIMPLEMENTED,
    details: /^Received message compressed with unsupported encoding/,
    refusal: () => ({ code: Status.UNIMPLEMENTED, details: 'grpc-encoding names a compression this server does not support (identity, gzip, deflate)', metadata: new Metadata() }),
  },
]

function refusal(field: string, description: string, reason: string): StatusObject {
  return toServiceStatus(new InvalidArgumentError([{ field, description }], reason, `request ${field ? `${field} ` : ''}${description}`)).status
}

/** What goes to the caller in place of `status`: a rewritten refusal, or the status itself. */
export function preciseTransportStatus(status: StatusObject): StatusObject {
  const rewrite = REWRITES.find((r) => r.code === status.code && r.details.test(status.details))
  return rewrite ? rewrite.refusal() : status
}

/**
 * The first server interceptor: grpc-js's base call sends its own refusals through its own
 * sendStatus, below every interceptor, so that one method of the call it is given is wrapped.
 */
export const transportRefusals: ServerInterceptor = (_method, call) => {
  const send = call.sendStatus.bind(call)
  call.sendStatus = (status) => send(preciseTransportStatus(status as StatusObject))
  return new ServerInterceptingCall(call)
}

/**
 * Resets (RST_STREAM CANCEL) a call whose client has not finished sending its request within
 * `ms` of its headers: a unary or server-streaming request is one message, sent at once. The
 * client sees CANCELLED; grpc-js, told the stream closed, lets the call go.
 */
export function boundRequestArrival(stream: ServerHttp2Stream, ms: number): void {
  const reset = (): void => {
    if (!stream.destroyed && !stream.closed && !stream.state.remoteClose) stream.close(http2.NGHTTP2_CANCEL)
  }
  // Looked at after the next poll phase: when the event loop was held up past the bound, the
  // request may be waiting in the socket, read only after the timers ran.
  const timer = setTimeout(() => setImmediate(reset), ms)
  timer.unref()
  stream.once('close', () => clearTimeout(timer))
}
