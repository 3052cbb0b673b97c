// Hostile transport, as a client that is not ours writes HTTP/2: deadlines that grpc-js would
// wrap or misread, timeouts outside the specification, bodies that do not decompress, encodings
// named at length. Every server of the mesh answers each with a precise status and a bounded
// message, never INTERNAL, and a far-future deadline is honoured instead of ending the call at once.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type ClientHttp2Session, connect } from 'node:http2'
import { readFile } from 'node:fs/promises'
import { gzipSync } from 'node:zlib'
import { Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import { RegisterCloudAccountRequest } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { EventKind, type InstanceEventsServiceClient } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { type FieldViolation, STATUS_DETAILS_KEY, statusDetailsOf } from '../../services/runtime/errors.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { LONGEST_DEADLINE_HEADER, screenCallHeaders } from '../../services/runtime/transport-screen.ts'
import { expectStatus, newRequestId } from '../helpers/grpc.ts'
import { INSTANCE, OPERATOR, startTestMesh, type TestMesh } from '../helpers/mesh.ts'

let t: TestMesh
before(async () => {
  t = await startTestMesh()
})
after(async () => t?.stop())

interface RawOutcome {
  readonly code: number
  readonly details: string
  readonly reason?: string
  readonly violations: readonly FieldViolation[]
}

/** One call written as raw HTTP/2: the headers and body as given (grpc.health.v1.Health/Check unless `path` says otherwise). */
function rawHttp2Call(session: ClientHttp2Session, headers: Record<string, string>, body: Buffer, compressed = false, path = '/grpc.health.v1.Health/Check'): Promise<RawOutcome> {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt8(compressed ? 1 : 0, 0)
  prefix.writeUInt32BE(body.length, 1)
  return new Promise((resolve, reject) => {
    const request = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers })
    let status: Record<string, unknown> = {}
    request.on('response', (h) => {
      if (h['grpc-status'] !== undefined) status = h // trailers-only
    })
    request.on('trailers', (h) => (status = h))
    request.on('data', () => {})
    request.on('error', reject)
    request.on('close', () => {
      const metadata = new Metadata()
      const details = status[STATUS_DETAILS_KEY]
      if (typeof details === 'string') metadata.set(STATUS_DETAILS_KEY, Buffer.from(details, 'base64'))
      resolve({ code: Number(status['grpc-status']), details: decodeURIComponent(String(status['grpc-message'] ?? '')), ...statusDetailsOf(metadata) })
    })
    request.end(Buffer.concat([prefix, body]))
  })
}

async function sessionTo(address: string, identity: Identity = INSTANCE): Promise<ClientHttp2Session> {
  const paths = await certificateFiles(t.config, identity)
  const [ca, cert, key] = await Promise.all([readFile(paths.caFile), readFile(paths.certFile), readFile(paths.keyFile)])
  return connect(`https://${address}`, { ca, cert, key, checkServerIdentity: () => undefined })
}

const EMPTY = Buffer.alloc(0)
const CASES: { what: string; headers: Record<string, string>; body: Buffer; compressed?: boolean; expect: (o: RawOutcome) => string | undefined }[] = [
  {
    what: 'a grpc-timeout that is no timeout',
    headers: { 'grpc-timeout': 'soon' },
    body: EMPTY,
    expect: (o) =>
      o.code === Status.INVALID_ARGUMENT && o.violations.some((v) => v.field === 'grpc-timeout') && !o.details.includes('soon')
        ? undefined
        : 'INVALID_ARGUMENT naming grpc-timeout, not echoing it',
  },
  {
    what: 'a grpc-timeout of nine digits (grpc-js read the last eight)',
    headers: { 'grpc-timeout': '123456789m' },
    body: EMPTY,
    expect: (o) => (o.code === Status.INVALID_ARGUMENT && o.violations.some((v) => v.field === 'grpc-timeout') ? undefined : 'INVALID_ARGUMENT naming grpc-timeout'),
  },
  {
    what: 'a grpc-timeout of 30 days (wrapped past 2^31 ms)',
    headers: { 'grpc-timeout': '720H' },
    body: EMPTY,
    expect: (o) => (o.code === Status.OK ? undefined : 'OK'),
  },
  {
    what: 'a gzip body that is not gzip',
    headers: { 'grpc-encoding': 'gzip' },
    body: Buffer.from('not gzip at all'),
    compressed: true,
    expect: (o) => (o.code === Status.INVALID_ARGUMENT && o.reason === 'MALFORMED_REQUEST' ? undefined : 'INVALID_ARGUMENT MALFORMED_REQUEST'),
  },
  {
    what: 'a gzip body that is gzip',
    headers: { 'grpc-encoding': 'gzip' },
    body: gzipSync(EMPTY),
    compressed: true,
    expect: (o) => (o.code === Status.OK ? undefined : 'OK'),
  },
  {
    what: 'an unsupported grpc-encoding named in 4,000 characters',
    headers: { 'grpc-encoding': 'x'.repeat(4000) },
    body: Buffer.from('x'),
    compressed: true,
    expect: (o) => (o.code === Status.UNIMPLEMENTED && o.details.length < 200 ? undefined : 'UNIMPLEMENTED with a bounded message'),
  },
]

test('every server: malformed and far-future timeouts, undecompressable bodies and unknown encodings get precise, bounded statuses', async () => {
  const failures: string[] = []
  for (const service of t.mesh.services) {
    const session = await sessionTo(service.address)
    try {
      for (const c of CASES) {
        const outcome = await rawHttp2Call(session, c.headers, c.body, c.compressed)
        const wanted = c.expect(outcome)
        if (wanted)
          failures.push(`${service.name}, ${c.what}: expected ${wanted}, got ${Status[outcome.code]} "${outcome.details.slice(0, 80)}" (${outcome.details.length} characters)`)
      }
    } finally {
      session.close()
    }
  }
  assert.deepEqual(failures, [])
})

test('a Notify stream with a deadline 30 days away stays open and delivers (grpc-js ended it DEADLINE_EXCEEDED at once)', async () => {
  const client = (await t.client('instance-events', INSTANCE)) as InstanceEventsServiceClient
  const deviceId = INSTANCE.id
  const stream = client.notify({ deviceId, afterSequence: 0n }, new Metadata(), { deadline: Date.now() + 30 * 24 * 3600_000 })
  const next = () =>
    new Promise<string>((resolve) => {
      const onData = () => done('event')
      const onError = (error: ServiceError) => done(`ended ${Status[error.code]}: ${error.details}`)
      const done = (what: string) => {
        stream.off('data', onData)
        stream.off('error', onError)
        resolve(what)
      }
      stream.on('data', onData)
      stream.on('error', onError)
    })
  try {
    for (const subjectId of ['login-far-1', 'login-far-2']) {
      const arrived = next()
      await unaryCall(client, 'publish', { requestId: newRequestId(), deviceId, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId })
      assert.equal(await arrived, 'event')
    }
  } finally {
    stream.on('error', () => {}) // the CANCELLED the cancel below ends it with
    stream.cancel()
  }
})

test('a call whose deadline has passed when it arrives (grpc-timeout 0n) is not carried out: nothing is committed for a client already told DEADLINE_EXCEEDED', async () => {
  const session = await sessionTo(t.address('account-management'), OPERATOR)
  const method = 'cloudpay.account.v1.AccountManagementService/RegisterCloudAccount'
  try {
    const body = Buffer.from(RegisterCloudAccountRequest.encode({ requestId: newRequestId(), accountId: 'expired-on-arrival', password: 'expired on arrival 1' }).finish())
    const outcome = await rawHttp2Call(session, { 'grpc-timeout': '0n' }, body, false, `/${method}`)
    assert.equal(outcome.code, Status.DEADLINE_EXCEEDED)
    // The server's span of the call ends when its handler is done: then nothing more happens for it.
    let span
    for (let waited = 0; !(span = t.spans.getFinishedSpans().find((s) => s.name === method)); waited += 20) {
      assert.ok(waited < 10_000, 'the call ends on the server')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    assert.equal(span.attributes['rpc.grpc.status_code'], Status.DEADLINE_EXCEEDED, 'the handler did not run')
    await expectStatus(unaryCall(await t.client('account-management', OPERATOR), 'getCloudAccount', { accountId: 'expired-on-arrival' }), Status.NOT_FOUND)
  } finally {
    session.close()
  }
})

test('grpc-timeout is read as the specification writes it: too far is the longest a timer keeps, off-format is refused', () => {
  const screened = (value: string) => {
    const headers: Record<string, string> = { 'grpc-timeout': value }
    screenCallHeaders(headers)
    return headers['grpc-timeout']
  }
  for (const kept of ['0n', '10S', '99999999u', '596H', '2147483S']) assert.equal(screened(kept), kept)
  for (const far of ['597H', '2592000S', '99999999H', '99999999M']) assert.equal(screened(far), LONGEST_DEADLINE_HEADER)
  for (const bad of ['123456789S', '10', 'S', '10 S', '-1S', '10s', '1S1S']) assert.notEqual(screened(bad), bad)
})
