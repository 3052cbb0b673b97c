// Profiling aid: runs one flow repeatedly against an in-process mesh, so that
// `node --cpu-prof --import tsx bench/profile-flow.ts login|order [count] [--concurrency N]` shows where
// a flow's time goes (concurrency 1 by default; N workers each run `count` flows).
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { demoClients } from '../cli/demo/clients.ts'
import { ALL_SERVICES } from '../services/registry.ts'
import { createLogger } from '../services/runtime/logger.ts'
import { startMesh } from '../services/runtime/process.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { readStoredSpans } from '../services/runtime/span-file.ts'
import { waterfall } from '../cli/waterfall.ts'
import { setUpMerchant, worker } from './flows.ts'
import { benchConfig } from './mesh-config.ts'
import { clusterDatabase } from '../cli/cluster/postgres.ts'

const flow = (process.argv[2] ?? 'login') as 'login' | 'order'
const count = Number(process.argv[3] ?? 50)
const flag = process.argv.indexOf('--concurrency')
const concurrency = flag > 0 ? Number(process.argv[flag + 1]) : 1
const home = await mkdtemp(join(tmpdir(), 'cloudpay-profile-'))
// With --waterfall, spans are kept so the last flow's waterfall can be printed.
// On a DATABASE_URL server, a database of its own (dropped after), as the bench does: rows another run
// sealed under another home's data key would not open with this one's.
const database = process.env.DATABASE_URL ? await clusterDatabase(process.env.DATABASE_URL, { fresh: true }) : undefined
const config = benchConfig(home, {
  ...(database ? { DATABASE_URL: database.url } : {}),
  ...(process.argv.includes('--waterfall') ? { CLOUDPAY_TRACE_FILE: join(home, 'spans.jsonl') } : {}),
})
const telemetry = startTelemetry({ env: {}, spanFile: config.traceFile })
const mesh = await startMesh(ALL_SERVICES, { config, telemetry, log: createLogger({ level: 'warn', name: 'profile' }) })
const clients = demoClients(config, new Map(mesh.services.map((s) => [s.name, s.address])), telemetry)
await setUpMerchant(clients)
const workers = await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(clients, i)))
const w = workers[0]!
for (let i = 0; i < 5; i++) await w[flow]()
const start = performance.now()
await Promise.all(
  workers.map(async (each) => {
    for (let i = 0; i < count; i++) await each[flow]()
  }),
)
const elapsed = performance.now() - start
process.stderr.write(`${flow}: ${(elapsed / count).toFixed(1)} ms per flow per worker, ${((count * concurrency * 1000) / elapsed).toFixed(1)} flows/s at concurrency ${concurrency}\n`)
if (config.traceFile) {
  await telemetry.forceFlush()
  const spans = readStoredSpans(config.traceFile)
  // The payment's trace: Pay, the platform's report, the hand-off, the event.
  const last = spans.filter((s) => s.name === 'outbox payment-result').at(-1)
  if (last) process.stdout.write(waterfall(spans, last.traceId, { db: process.argv.includes('--db') }))
}
for (const each of workers) each.close()
clients.close()
await mesh.stop()
await database?.stop()
process.exit(0)
