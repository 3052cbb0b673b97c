// The subscribers of a fan-out benchmark, in a process of their own so that the server's process
// holds only the server's side of each stream (its memory per subscriber is then measurable) and
// decoding on the client side does not compete with the server for its core. Driven over IPC by
// fan-out.ts: open N streams, arm a round, report when every stream has that round's message.
import { Metadata, type ClientReadableStream } from '@grpc/grpc-js'
import { InstanceEventsServiceClient, NotifyResponse } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { createClient } from '../services/runtime/client.ts'
import type { CertificatePaths } from '../services/runtime/dev-certificates.ts'
import { channelCredentials } from '../services/runtime/tls.ts'
import { echoClients } from './baseline.ts'

export type SubscriberCommand =
  | {
      readonly open: {
        readonly kind: 'bare' | 'pipe'
        readonly address: string
        readonly certificates: CertificatePaths
        readonly n: number
        readonly deviceId?: string
        readonly afterSequence?: string
      }
    }
  | { readonly arm: { readonly round: number; readonly subjectId: string } }
  | { readonly close: true }

export type SubscriberReport =
  | { readonly opened: number }
  /** `missed`: streams that never had the previous round's message (it timed out). */
  | { readonly armed: number; readonly missed: number }
  | { readonly received: number; readonly cpuMs: number } | { readonly closed: { readonly errors: number } }

const STREAMS_PER_CHANNEL = 1000
const send = (report: SubscriberReport): void => void process.send!(report)

let streams: ClientReadableStream<unknown>[] = []
let channels: { close(): void }[] = []
let errors = 0
let armed: { round: number; subjectId: string } | undefined
let received = 0
let cpuAtArm = process.cpuUsage()

function onMessage(matches: (message: unknown) => boolean) {
  return (message: unknown): void => {
    if (!armed || !matches(message)) return
    if (++received === streams.length) {
      const cpu = process.cpuUsage(cpuAtArm)
      send({ received: armed.round, cpuMs: (cpu.user + cpu.system) / 1000 })
      armed = undefined
    }
  }
}

process.on('message', (command: SubscriberCommand) => {
  if ('open' in command) {
    const { kind, address, certificates, n } = command.open
    const credentials = channelCredentials(certificates, 60_000)
    const count = Math.ceil(n / STREAMS_PER_CHANNEL)
    if (kind === 'bare') {
      const clients = echoClients(address, credentials, count)
      channels = clients
      // The bare server sends a NotifyResponse's bytes; decoded here as the generated client decodes them.
      const matches = (message: unknown): boolean => NotifyResponse.decode(message as Buffer).event?.subjectId === armed!.subjectId
      for (let i = 0; i < n; i++) streams.push(clients[i % count]!.subscribe(Buffer.alloc(0), new Metadata()))
      for (const stream of streams) stream.on('data', onMessage(matches))
    } else {
      // A channel option of its own per client: grpc-js would otherwise share one connection among them.
      const clients = Array.from({ length: count }, (_, i) => createClient(InstanceEventsServiceClient, address, credentials, undefined, { 'channel-index': i }))
      channels = clients
      const matches = (message: unknown): boolean => (message as NotifyResponse).event?.subjectId === armed!.subjectId
      const request = { deviceId: command.open.deviceId!, afterSequence: BigInt(command.open.afterSequence!) }
      for (let i = 0; i < n; i++) streams.push(clients[i % count]!.notify(request))
      for (const stream of streams) stream.on('data', onMessage(matches))
    }
    for (const stream of streams) stream.on('error', (error: { code?: number }) => void (error.code !== 1 && errors++))
    send({ opened: streams.length })
  } else if ('arm' in command) {
    const missed = armed ? streams.length - received : 0
    armed = command.arm
    received = 0
    cpuAtArm = process.cpuUsage()
    send({ armed: command.arm.round, missed })
  } else {
    for (const stream of streams) stream.cancel()
    for (const channel of channels) channel.close()
    send({ closed: { errors } })
    setTimeout(() => process.exit(0), 100)
  }
})
