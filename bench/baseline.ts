// The limit grpc-js itself sets on this machine: a bare unary echo and a bare server-stream
// fan-out over the same mutual TLS as the mesh, with no database and no authorization.
import {
  type ChannelCredentials,
  Server,
  type ServerCredentials,
  type ServerWritableStream,
  makeGenericClientConstructor,
  type ServiceDefinition,
  Metadata,
  type ClientReadableStream,
} from '@grpc/grpc-js'
import { CLIENT_CHANNEL_OPTIONS } from '../services/runtime/client.ts'
import { MAX_CONCURRENT_STREAMS, MESSAGE_LIMIT_BYTES } from '../services/runtime/limits.ts'
import { load, type Figures } from './stats.ts'

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b }
const ECHO: ServiceDefinition = {
  echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
  subscribe: {
    path: '/bench.Echo/Subscribe',
    requestStream: false,
    responseStream: true,
    requestSerialize: raw.serialize,
    requestDeserialize: raw.deserialize,
    responseSerialize: raw.serialize,
    responseDeserialize: raw.deserialize,
  },
}
const EchoClient = makeGenericClientConstructor(ECHO, 'Echo')
type EchoClientType = InstanceType<typeof EchoClient> & {
  echo(request: Buffer, callback: (error: Error | null, response: Buffer) => void): void
  subscribe(request: Buffer, metadata: Metadata): ClientReadableStream<Buffer>
}

export interface BareServer {
  readonly address: string
  publish(message: Buffer): void
  subscribers(): number
  stop(): Promise<void>
}

export async function startBareServer(credentials: ServerCredentials): Promise<BareServer> {
  const streams = new Set<ServerWritableStream<Buffer, Buffer>>()
  const server = new Server({ 'grpc.max_concurrent_streams': MAX_CONCURRENT_STREAMS, 'grpc.max_receive_message_length': MESSAGE_LIMIT_BYTES })
  server.addService(ECHO, {
    echo: (call: { request: Buffer }, callback: (e: null, r: Buffer) => void) => callback(null, call.request),
    subscribe: (call: ServerWritableStream<Buffer, Buffer>) => {
      streams.add(call)
      call.on('cancelled', () => streams.delete(call))
    },
  })
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (e, p) => (e ? reject(e) : resolve(p))))
  return {
    address: `127.0.0.1:${port}`,
    publish: (message) => {
      for (const stream of streams) stream.write(message)
    },
    subscribers: () => streams.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const stream of streams) stream.end()
        server.tryShutdown(() => resolve())
        setTimeout(() => server.forceShutdown(), 2000).unref()
      }),
  }
}

export function echoClients(address: string, credentials: ChannelCredentials, channels: number): EchoClientType[] {
  return Array.from(
    { length: channels },
    (_, i) => new EchoClient(address, credentials, { ...CLIENT_CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': 'localhost', 'channel-index': i }) as EchoClientType,
  )
}

export async function unaryBaseline(clients: EchoClientType[], concurrency: number, durationMs: number): Promise<Figures & { completed: number }> {
  const payload = Buffer.alloc(64, 1)
  let next = 0
  return load(
    () =>
      new Promise((resolve, reject) => {
        const client = clients[next++ % clients.length]!
        client.echo(payload, (error, response) => (error ? reject(error) : resolve(response)))
      }),
    concurrency,
    durationMs,
  )
}

export { EchoClient, type EchoClientType }
