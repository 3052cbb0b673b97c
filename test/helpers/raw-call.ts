// Calls with request bytes as they are, like grpcurl or Python grpcio sending what an attacker
// wrote: no generated encoder in between, any RPC kind, and the outcome as status and details.
import { type ChannelCredentials, Client, Metadata, type ServiceError, status as Status, type StatusObject } from '@grpc/grpc-js'
import type { DescMethod } from '@bufbuild/protobuf'
import { createClient } from '../../services/runtime/client.ts'
import { type FieldViolation, statusDetailsOf } from '../../services/runtime/errors.ts'

export interface Outcome {
  readonly code: Status
  readonly details: string
  readonly reason?: string
  readonly violations: readonly FieldViolation[]
  readonly ms: number
}

const asIs = (bytes: Buffer): Buffer => bytes

export function rawClient(address: string, credentials: ChannelCredentials, options: Record<string, unknown> = {}): Client {
  return createClient(Client, address, credentials, undefined, options)
}

/** The "/pkg.Service/Method" path of a method descriptor. */
export const pathOf = (method: DescMethod): string => `/${method.parent.typeName}/${method.name}`

/** Sends `body` as the one request message of `method` and resolves with how the call ended. */
export function rawCall(client: Client, method: DescMethod, body: Buffer, settings: { deadlineMs?: number; metadata?: Metadata } = {}): Promise<Outcome> {
  const started = Date.now()
  const path = pathOf(method)
  const metadata = settings.metadata ?? new Metadata()
  const options = { deadline: Date.now() + (settings.deadlineMs ?? 10_000) }
  return new Promise((resolve) => {
    const end = (status: Partial<StatusObject>): void =>
      resolve({ code: status.code ?? Status.OK, details: status.details ?? '', ...statusDetailsOf(status.metadata), ms: Date.now() - started })
    if (method.methodKind === 'unary') {
      client.makeUnaryRequest(path, asIs, asIs, body, metadata, options, (error: ServiceError | null) => end(error ?? { code: Status.OK }))
      return
    }
    let stream
    if (method.methodKind === 'server_streaming') {
      stream = client.makeServerStreamRequest(path, asIs, asIs, body, metadata, options)
    } else {
      const duplex = client.makeBidiStreamRequest(path, asIs, asIs, metadata, options)
      duplex.write(body)
      duplex.end()
      stream = duplex
    }
    // A stream that answers at all has accepted the request: the outcome so far is OK.
    stream.on('data', () => {
      stream.cancel()
      end({ code: Status.OK })
    })
    stream.on('error', (error: ServiceError) => end(error))
    stream.on('status', (status: StatusObject) => end(status))
  })
}
