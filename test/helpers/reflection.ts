// A reflection client over the generated v1 stubs, as grpcurl uses it: one bidi stream, one
// request at a time.
import { type ChannelCredentials, Metadata } from '@grpc/grpc-js'
import { type ServerReflectionRequest, type ServerReflectionResponse, ServerReflectionClient } from '../../gen/grpc/reflection/v1/reflection.ts'

export interface ReflectionSession {
  ask(request: ServerReflectionRequest['messageRequest']): Promise<ServerReflectionResponse>
  close(): void
}

export function openReflection(address: string, credentials: ChannelCredentials): ReflectionSession {
  const client = new ServerReflectionClient(address, credentials)
  const stream = client.serverReflectionInfo(new Metadata(), { deadline: Date.now() + 10_000 })
  const waiting: { resolve(r: ServerReflectionResponse): void; reject(e: Error): void }[] = []
  stream.on('data', (response: ServerReflectionResponse) => waiting.shift()?.resolve(response))
  stream.on('error', (error: Error) => {
    for (const w of waiting.splice(0)) w.reject(error)
  })
  return {
    ask(messageRequest) {
      return new Promise((resolve, reject) => {
        waiting.push({ resolve, reject })
        stream.write({ host: '', messageRequest })
      })
    },
    close() {
      stream.end()
      client.close()
    },
  }
}
