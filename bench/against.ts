// `npm run bench -- --against-running`: the login and order flows at c=1, 16 and 64 against a mesh
// that already serves at the configured addresses, e.g. a replica cluster
// (`. .cloudpay-cluster/cluster.env` after `npm run cluster -- --replicas 2`), through the SDK and the
// demo's clients as an integrating app would. It reports flows/s and latency; the CPU of each process
// is the production shape's to measure (it starts processes of its own).
import { status as Status } from '@grpc/grpc-js'
import { demoClients } from '../cli/demo/clients.ts'
import { loadConfig } from '../services/runtime/config.ts'
import { addressBook } from '../services/runtime/service-host.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { setUpMerchant, type Worker, worker } from './flows.ts'
import { figuresRow, load } from './stats.ts'

/** Within the default CLOUDPAY_OPENING_BALANCE_MAX_MINOR: ~2,000 orders per worker. */
const OPENING_BALANCE_MINOR = 1_000_000n

export async function benchAgainstRunning(quick: boolean, say: (line: string) => void): Promise<{ rows: string[][]; results: Record<string, unknown> }> {
  const config = loadConfig()
  const levels = quick ? [1, 16] : [1, 16, 64]
  const durationMs = quick ? 3_000 : 8_000
  const telemetry = startTelemetry({ env: {} })
  const clients = demoClients(config, addressBook(config), telemetry)
  const workers: Worker[] = []
  try {
    await setUpMerchant(clients).catch((error: { code?: number }) => {
      if (error.code !== Status.ALREADY_EXISTS) throw error
    })
    say(`against the running mesh at ${config.addresses['account-management']} (and its peers): ${Math.max(...levels)} workers`)
    workers.push(...(await Promise.all(Array.from({ length: Math.max(...levels) }, (_, i) => worker(clients, i, OPENING_BALANCE_MINOR)))))
    const rows: string[][] = []
    const results: Record<string, Record<number, unknown>> = { login: {}, order: {} }
    for (const flow of ['login', 'order'] as const) {
      for (const c of levels) {
        say(`against the running mesh: ${flow} at c=${c}`)
        let next = 0
        const figures = await load(() => workers[next++ % c]![flow](), c, durationMs)
        results[flow]![c] = figures
        rows.push(figuresRow(`${flow} flow (running mesh)`, `c=${c}`, figures, config.addresses['payment-management'], { unit: 'flows/s', digits: 1 }))
      }
    }
    return { rows, results: { againstRunning: { addresses: config.addresses, results } } }
  } finally {
    for (const w of workers) w.close()
    clients.close()
    await telemetry.shutdown()
  }
}
