// Server reflection answers a client only as fast as it reads: a client that sends many requests
// and reads none made the server buffer every answer (255 KB of requests for a service's files
// held ~575 MB of answers in memory). Counted over real gRPC and mutual TLS: how far the server
// ever gets ahead of a client that reads its answers one at a time.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { type ClientHttp2Stream, connect } from 'node:http2'
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

test('a client that floods ServerReflectionInfo and reads slowly is answered only as far as it reads, then fully', async () => {
  const paths = await pki.paths(CALLER)
  const [ca, cert, key] = await Promise.all([readFile(paths.caFile), readFile(paths.certFile), readFile(paths.keyFile)])
  // A small receive window: the server can send little before this client reads.
  const session = connect(`https://127.0.0.1:${server.port}`, { ca, cert, key, checkServerIdentity: () => undefined, settings: { initialWindowSize: 1024 } })
  session.on('error', () => undefined)
  try {
    const stream = session.request({ ':method': 'POST', ':path': '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo', 'content-type': 'application/grpc', te: 'trailers' })
    stream.on('error', () => undefined)
    stream.pause()
    const body = Buffer.from(ServerReflectionRequest.encode({ host: '', messageRequest: { $case: 'fileContainingSymbol', value: 'grpc.reflection.v1.ServerReflection' } }).finish())
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body])
    frame.writeUInt32BE(body.length, 1)
    stream.write(Buffer.concat(Array.from({ length: REQUESTS }, () => frame)))
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
