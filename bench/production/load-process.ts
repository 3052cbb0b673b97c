// The load generator of the production-shape benchmark, in a process of its own so that its CPU
// is measured apart from the services'. Driven over IPC by bench/production/shape.ts: set up the
// workers (cloudpay devices, terminals and payers; the peer's people), run one flow at one
// concurrency, report the raw samples.
import { demoClients } from '../../cli/demo/clients.ts'
import { loadConfig } from '../../services/runtime/config.ts'
import { startTelemetry } from '../../services/runtime/telemetry.ts'
import { peerClient, type PeerClient } from '../peer/ciba-login.ts'
import { setUpMerchant, type Worker, worker } from '../flows.ts'
import { sample, type Samples } from '../stats.ts'

export type LoadFlow = 'login' | 'order' | 'peer-login'

export type LoadCommand =
  | { readonly setup: { readonly env: Record<string, string>; readonly workers: number; readonly peerPort?: number } }
  | { readonly run: { readonly flow: LoadFlow; readonly concurrency: number; readonly durationMs: number } }

export type LoadReport = { readonly ready: true } | { readonly samples: Samples } | { readonly failed: string }

const send = (report: LoadReport): void => void process.send!(report)

let workers: Worker[] = []
let peer: PeerClient | undefined
const people: { loginHint: string; password: string }[] = []
let close = (): void => undefined

async function setup(command: Extract<LoadCommand, { setup: unknown }>['setup']): Promise<void> {
  const config = loadConfig(command.env)
  const telemetry = startTelemetry({ env: {} })
  const clients = demoClients(config, new Map(Object.entries(config.addresses)) as never, telemetry)
  await setUpMerchant(clients)
  workers = await Promise.all(Array.from({ length: command.workers }, (_, i) => worker(clients, i)))
  if (command.peerPort) {
    peer = await peerClient(config, command.peerPort)
    for (let i = 0; i < command.workers; i++) {
      const person = { loginHint: `peer-person-${i}`, password: `peer-password-${i}` }
      await peer.register(person.loginHint, person.password)
      people.push(person)
    }
  }
  close = () => {
    for (const w of workers) w.close()
    peer?.close()
    clients.close()
  }
}

async function run({ flow, concurrency, durationMs }: Extract<LoadCommand, { run: unknown }>['run']): Promise<Samples> {
  let next = 0
  const operation =
    flow === 'peer-login'
      ? () => {
          const person = people[next++ % concurrency]!
          return peer!.login(person.loginHint, person.password)
        }
      : () => workers[next++ % concurrency]![flow]()
  return sample(operation, concurrency, durationMs)
}

process.on('message', (command: LoadCommand) => {
  const work = 'setup' in command ? setup(command.setup).then((): LoadReport => ({ ready: true })) : run(command.run).then((samples): LoadReport => ({ samples }))
  work.then(send, (error: unknown) => send({ failed: error instanceof Error ? (error.stack ?? error.message) : String(error) }))
})
process.on('disconnect', () => {
  close()
  process.exit(0)
})
