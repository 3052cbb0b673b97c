// Clients that send or read slowly, over real gRPC and mutual TLS, against the server every service
// runs. Server reflection answers a client only as fast as it reads: a client that sent many
// requests and read none made the server buffer every answer (255 KB of requests for a service's
// files held ~575 MB of answers), so how far the server gets ahead of a slow reader is counted. A
// call that opens and never sends its request is reset instead of waiting for ever.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type ClientHttp2Session, type ClientHttp2Stream, connect, constants as http2 } from 'node:http2'
import { readFile, rm } from 'node:fs/promises'
import { ServerReflectionRequest } from '../../gen/grpc/reflection/v1/reflection.ts'
import { createLogger } from '../../services/runtime/logger.ts'
import { DescriptorPool } from '../../services/runtime/reflection.ts'
import { type RunningServer, startServer } from '../../services/runtime/server.ts'
import { devPki } from '../helpers/certs.ts'

const SERVER = { role: 'service', id: 'reflection-server' } as const
const CALLER = { role: 'operator', id: 'flooder' } as const
const REQUESTS = 2000
/** grpc-js holds up to 16 unsent messages per stream; the HTTP/2 windows a few more. */
const MOST_AHEAD = 48

let pki: Awaited<ReturnType<typeof devPki>>
let server: RunningServer
let answered = 0

before(async () => {
  pki = await devPki(100)
  const pool = DescriptorPool.load()
  const files = pool.fileWithDependencies.bind(pool)
  pool.fileWithDependencies = (name: string) => {
    answered++
    return files(name)
  }
  server = await startServer({
    address: '127.0.0.1:0',
    credentials: await pki.server(SERVER),
    log: createLogger({ level: 'silent', name: 'test' }),
    services: [],
    descriptors: pool,
  })
})
after(async () => {
  await server?.shutdown(1000)
  await rm(pki.home, { recursive: true, force: true })
})

/** Resolves with the next whole gRPC message of `stream` (length-prefixed), reading only as much as it needs. */
function nextMessage(stream: ClientHttp2Stream, pending: { bytes: Buffer }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const take = (): boolean => {
      if (pending.bytes.length < 5) return false
      const length = pending.bytes.readUInt32BE(1)
      if (pending.bytes.length < 5 + length) return false
      const message = pending.bytes.subarray(5, 5 + length)
      pending.bytes = pending.bytes.subarray(5 + length)
      stream.pause()
      stream.off('data', onData)
      stream.off('close', onClose)
      resolve(message)
      return true
    }
    const onData = (chunk: Buffer) => {
      pending.bytes = Buffer.concat([pending.bytes, chunk])
      take()
    }
    const onClose = () => reject(new Error(`the stream closed (${stream.rstCode})`))
    if (take()) return
    stream.on('data', onData)
    stream.on('close', onClose)
    stream.resume()
  })
}

/** A raw HTTP/2 session as the caller; `window` is its receive window (small: the server can send little before it reads). */
async function rawSession(window = 65_535): Promise<ClientHttp2Session> {
  const paths = await pki.paths(CALLER)
  const [ca, cert, key] = await Promise.all([readFile(paths.caFile), readFile(paths.certFile), readFile(paths.keyFile)])
  const session = connect(`https://127.0.0.1:${server.port}`, { ca, cert, key, checkServerIdentity: () => undefined, settings: { initialWindowSize: window } })
  session.on('error', () => undefined)
  return session
}

const open = (session: ClientHttp2Session, path: string): ClientHttp2Stream => {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false })
  stream.on('error', () => undefined)
  return stream
}

const framed = (body: Uint8Array): Buffer => {
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body])
  frame.writeUInt32BE(body.length, 1)
  return frame
}
const REFLECTION_PATH = '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo'
const reflectionRequest = framed(ServerReflectionRequest.encode({ host: '', messageRequest: { $case: 'fileContainingSymbol', value: 'grpc.reflection.v1.ServerReflection' } }).finish())

test('a client that floods ServerReflectionInfo and reads slowly is answered only as far as it reads, then fully', async () => {
  const session = await rawSession(1024)
  try {
    const stream = open(session, REFLECTION_PATH)
    stream.pause()
    stream.write(Buffer.concat(Array.from({ length: REQUESTS }, () => reflectionRequest)))
    stream.end()
    const pending = { bytes: Buffer.alloc(0) }
    let read = 0
    let mostAhead = 0
    while (read < REQUESTS) {
      await nextMessage(stream, pending)
      read++
      mostAhead = Math.max(mostAhead, answered - read)
    }
    assert.ok(mostAhead <= MOST_AHEAD, `the server got ${mostAhead} answers ahead of its reader`)
    assert.equal(answered, REQUESTS)
  } finally {
    session.destroy()
  }
})

// Bounded: without the reset the silent calls never end.
test('a call that opens and never sends its request is reset; a reflection stream is answered, then ended once it asks nothing for as long; the connection serves on', { timeout: 20_000 }, async () => {
  const session = await rawSession()
  try {
    const reflection = open(session, REFLECTION_PATH)
    const reflectionEnded = new Promise<string>((resolve) => reflection.once('trailers', (headers) => resolve(String(headers['grpc-status']))))
    const pending = { bytes: Buffer.alloc(0) }
    reflection.write(reflectionRequest)
    assert.ok((await nextMessage(reflection, pending)).length > 0, 'reflection answers')
    const silent = Array.from({ length: 50 }, () => open(session, '/grpc.health.v1.Health/Check'))
    const resets = await Promise.all(silent.map((stream) => new Promise<number>((resolve) => stream.once('close', () => resolve(stream.rstCode ?? -1)))))
    assert.deepEqual([...new Set(resets)], [http2.NGHTTP2_CANCEL])
    reflection.resume()
    assert.equal(await reflectionEnded, '0', 'an idle reflection stream ends with OK, not a reset')
    // A whole request on the same connection is served as ever.
    const check = open(session, '/grpc.health.v1.Health/Check')
    const trailers = new Promise<string>((resolve) => check.once('trailers', (headers) => resolve(String(headers['grpc-status']))))
    check.on('data', () => undefined)
    check.end(framed(new Uint8Array()))
    assert.equal(await trailers, '0')
  } finally {
    session.destroy()
  }
})
