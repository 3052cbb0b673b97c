// `npm run bench [-- --quick]`: what a flow costs here, against the limit grpc-js sets here,
// measured in the same run: a bare echo and a bare stream fan-out over the same mutual TLS, then
// login and order flows and the Notify pipe through the whole mesh. Prints a table and appends a
// JSON result file under bench/results/.
import { execFileSync } from 'node:child_process'
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import type { ChannelCredentials } from '@grpc/grpc-js'
import type { Context } from '@opentelemetry/api'
import { SpanKind } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { sql } from 'kysely'
import { EventKind, InstanceEventsServiceClient, NotifyResponse } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { ALL_SERVICES } from '../services/registry.ts'
import { createClient, unaryCall } from '../services/runtime/client.ts'
import { databaseCounters } from '../services/runtime/database-tracing.ts'
import { ensureDevCertificate } from '../services/runtime/dev-certificates.ts'
import { createLogger } from '../services/runtime/logger.ts'
import { hashPassword, verifyPassword } from '../services/runtime/passwords.ts'
import { startMesh } from '../services/runtime/process.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { channelCredentials, serverCredentials } from '../services/runtime/tls.ts'
import { demoClients } from '../cli/demo/clients.ts'
import { echoClients, startBareServer, unaryBaseline } from './baseline.ts'
import { fanOut, until } from './fan-out.ts'
import { clusterDatabase } from '../cli/cluster/postgres.ts'
import { benchConfig } from './mesh-config.ts'
import { productionShape } from './production/shape.ts'
import { statementBuilding } from './statement-building.ts'
import { setUpMerchant, worker } from './flows.ts'
import { type Figures, figuresRow, load, round, table } from './stats.ts'
import { benchAgainstRunning } from './against.ts'

const quick = process.argv.includes('--quick')
// The production shape (processes on PostgreSQL) runs in a full run; --production adds it to a
// quick one, --production-only skips the in-process mesh, --no-production skips the shape.
const productionOnly = process.argv.includes('--production-only')
const production = productionOnly || process.argv.includes('--production') || (!quick && !process.argv.includes('--no-production'))
const LEVELS = quick ? [1, 16] : [1, 16, 64]
const PEER_LEVELS = [1, 16]
const UNARY_MS = quick ? 1500 : 5000
const FLOW_MS = quick ? 2500 : 8000
// The production shape's processes warm up (each flow, unjudged) before they are measured.
const WARM_UP_MS = quick ? 3000 : 15_000
const FANOUT = quick ? [1000] : [1000, 10_000]
// A p99 judged over 50 rounds at least (issue #14); a quick run only checks that the pipe works.
const ROUNDS = quick ? 5 : 50

/** An event as the pipe's rounds carry it: a device's payment request, with a trace parent. */
const benchEvent = (subjectId: string, sequence: number) => ({
  deviceId: 'bench-pipe',
  sequence: BigInt(sequence + 1),
  kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED,
  subjectId,
  createTime: new Date(),
  traceParent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`,
})
const ROOT = new URL('..', import.meta.url).pathname

/** Counts server spans: the RPCs a flow makes, internal ones included. */
class RpcCounter implements SpanProcessor {
  rpcs = 0
  onStart(span: Span, _context: Context): void {
    if (span.kind === SpanKind.SERVER) this.rpcs++
  }
  onEnd(_span: ReadableSpan): void {}
  forceFlush = () => Promise.resolve()
  shutdown = () => Promise.resolve()
}

const pkgVersion = async (name: string) => (JSON.parse(await readFile(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version

async function main(): Promise<void> {
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-bench-'))
  // On a given PostgreSQL server, the in-process mesh gets a database of its own (the production
  // shape makes another): rows an earlier run sealed under another data key would not open.
  const meshDatabase = process.env.DATABASE_URL && !productionOnly ? await clusterDatabase(process.env.DATABASE_URL, { fresh: true }) : undefined
  const config = benchConfig(home, meshDatabase ? { DATABASE_URL: meshDatabase.url } : {})
  const database = productionOnly || config.databaseUrl ? 'postgres' : 'pglite'
  const results: Record<string, unknown> = {}
  const rows: string[][] = []
  const say = (line: string) => process.stderr.write(`${line}\n`)

  // ── Baseline: bare grpc-js over the same mTLS ──
  say(`baseline: bare grpc-js echo over mTLS (${quick ? 'quick' : 'full'})`)
  const serverPaths = await ensureDevCertificate(home, { role: 'service', id: 'bench-echo' })
  const clientPaths = await ensureDevCertificate(home, { role: 'operator', id: 'bench' })
  const bare = await startBareServer(serverCredentials(serverPaths, 60_000))
  const clientCredentials: ChannelCredentials = channelCredentials(clientPaths, 60_000)
  const [echo] = echoClients(bare.address, clientCredentials, 1)
  const baseline: Record<number, Figures & { cpuMsPerRpc: number }> = {}
  for (const c of LEVELS) {
    // CPU of this process per RPC: the client's side and the server's, both in here.
    const before = process.cpuUsage()
    const figures = await unaryBaseline([echo!], c, UNARY_MS)
    const used = process.cpuUsage(before)
    baseline[c] = { ...figures, cpuMsPerRpc: (used.user + used.system) / 1000 / figures.completed }
    rows.push(figuresRow('bare unary echo', `c=${c}`, baseline[c]!, `${round(baseline[c]!.cpuMsPerRpc, 3)} ms CPU per RPC (both ends)`, { unit: 'RPC/s', digits: 0 }))
  }
  results.baseline = { unary: baseline }

  // The deliberate cost inside each flow: one Argon2id verification (login password, payment
  // password) at the parameters the services use. Alone on this machine, in the same run.
  const hashed = await hashPassword('bench-password')
  const verifySerial = await load(() => verifyPassword(hashed, 'bench-password'), 1, quick ? 1000 : 3000)
  const cpuBefore = process.cpuUsage() // the process's CPU, the hashing threads' included
  const VERIFIES = 50
  for (let i = 0; i < VERIFIES; i++) await verifyPassword(hashed, 'bench-password')
  const cpu = process.cpuUsage(cpuBefore)
  const verifyCpuMs = (cpu.user + cpu.system) / 1000 / VERIFIES
  const verifyAllCores = await load(() => verifyPassword(hashed, 'bench-password'), 4 * cpus().length, quick ? 1000 : 3000)
  const passwordHash = { p50Ms: verifySerial.p50Ms, cpuMsPerVerify: verifyCpuMs, maxPerSecond: verifyAllCores.perSecond }
  rows.push([
    `Argon2id verify (deliberate)`,
    `c=1 / c=${4 * cpus().length}`,
    `${round(verifyAllCores.perSecond, 0)} verifies/s`,
    `${round(verifySerial.p50Ms)} ms`,
    `${round(verifySerial.p99Ms)} ms`,
    `${verifySerial.errors + verifyAllCores.errors}`,
    `${round(verifyCpuMs)} ms CPU each; one per login, one per order`,
  ])
  results.baseline = { ...(results.baseline as object), passwordHash }

  // What a store statement costs to make, per call: built by Kysely, or bound by a query template.
  const building = statementBuilding(quick)
  rows.push([
    'statement made (a login redemption)',
    'one call',
    '',
    `${round(building.kyselyMicros, 1)} / ${round(building.templateMicros, 2)} µs`,
    '',
    '0',
    `Kysely builds and compiles / a query template binds: x${round(building.kyselyMicros / building.templateMicros, 0)}`,
  ])
  results.baseline = { ...(results.baseline as object), statementBuilding: building }

  // The production shape: every service its own process, on PostgreSQL.
  const shape = production
    ? await productionShape({
        levels: LEVELS,
        peerLevels: PEER_LEVELS,
        flowMs: FLOW_MS,
        warmUpMs: WARM_UP_MS,
        bareRpc: { cpuMs: baseline[16]!.cpuMsPerRpc, p50Ms: baseline[1]!.p50Ms },
        hash: { cpuMs: verifyCpuMs, p50Ms: verifySerial.p50Ms },
        say,
      })
    : undefined
  if (shape) {
    rows.push(...shape.rows)
    results.production = shape.results
  }

  const inProcessTargets: { target: string; value: number; limit: number; atLeast: boolean; met: boolean; reachable?: boolean; why?: string }[] = []
  if (productionOnly) {
    echo!.close()
    await bare.stop()
  } else {

    // ── The mesh ──
    say(`mesh: all five services in this process on ${database}`)
    const counter = new RpcCounter()
    const telemetry = startTelemetry({ env: {}, spanProcessors: [counter] })
    const mesh = await startMesh(ALL_SERVICES, { config, telemetry, log: createLogger({ level: 'warn', name: 'bench' }) })
    const addresses = new Map(mesh.services.map((s) => [s.name, s.address]))
    const clients = demoClients(config, addresses, telemetry)
    await setUpMerchant(clients)

    // The database's own floor: one single-row commit, in the same run, on the same database.
    const db = mesh.database.db
    await sql`create schema if not exists bench`.execute(db)
    await sql`create table if not exists bench.commits (id bigserial primary key, at timestamptz not null default now())`.execute(db)
    const commitFloor = await load(() => db.transaction().execute((trx) => sql`insert into bench.commits default values`.execute(trx)), 1, quick ? 1000 : 3000)
    rows.push(figuresRow('single-row commit', 'c=1', commitFloor, database, { unit: 'commits/s', digits: 0 }))
    results.baseline = { ...(results.baseline as object), commit: commitFloor }

    const flowResults: Record<string, Record<number, Figures & { rpcsPerFlow: number; commitsPerFlow: number; ratioThroughput: number; ratioLatency?: number }>> = {
      login: {},
      order: {},
    }
    const workers = await Promise.all(Array.from({ length: Math.max(...LEVELS) }, (_, i) => worker(clients, i)))
    for (const flow of ['login', 'order'] as const) {
      // Cost of one flow (RPCs incl. internal ones, database commits), measured alone.
      const rpcs0 = counter.rpcs
      const commits0 = databaseCounters.transactions + databaseCounters.statementsOutsideTransactions
      const samples = 20
      for (let i = 0; i < samples; i++) await workers[0]![flow]()
      await new Promise((resolve) => setTimeout(resolve, 300)) // outbox deliveries after the flow ends are part of it
      const rpcsPerFlow = (counter.rpcs - rpcs0) / samples
      const commitsPerFlow = (databaseCounters.transactions + databaseCounters.statementsOutsideTransactions - commits0) / samples
      for (const c of LEVELS) {
        let next = 0
        const figures = await load(() => workers[next++ % c]![flow](), c, FLOW_MS)
        const ratioThroughput = figures.perSecond / (baseline[c]!.perSecond / rpcsPerFlow)
        // Target: p50 at c=1 <= 1.5 x (RPCs x bare p50 + commits x commit p50).
        const ratioLatency = c === 1 ? figures.p50Ms / (rpcsPerFlow * baseline[1]!.p50Ms + commitsPerFlow * commitFloor.p50Ms) : undefined
        flowResults[flow]![c] = { ...figures, rpcsPerFlow, commitsPerFlow, ratioThroughput, ...(ratioLatency !== undefined ? { ratioLatency } : {}) }
        rows.push(
          figuresRow(
            `${flow} flow`,
            `c=${c}`,
            figures,
            `${round(rpcsPerFlow, 1)} RPCs, ${round(commitsPerFlow, 1)} commits/flow; x${round(ratioThroughput)} of bare RPC/s per flow${ratioLatency !== undefined ? `; p50 x${round(ratioLatency)} of (RPCs x bare p50 + commits x commit p50)` : ''}`,
            { unit: 'flows/s', digits: 1 },
          ),
        )
      }
    }
    for (const w of workers) w.close()
    results.flows = flowResults

    // ── The Notify pipe: one publish to N durable subscribers of a device ──
    const pipeResults: Record<number, { p50Ms: number; p99Ms: number; errors: number; bytesPerSubscriber: number; ratioP99: number; roundsMs: readonly number[] }> = {}
    const device = 'bench-pipe'
    const instanceCertificates = await ensureDevCertificate(home, { role: 'instance', id: device })
    const publisher = createClient(InstanceEventsServiceClient, addresses.get('instance-events')!, channelCredentials(instanceCertificates, 60_000))
    const publish = async (subjectId: string) =>
      (await unaryCall(publisher, 'publish', { requestId: crypto.randomUUID(), deviceId: device, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId })).event!.sequence
    let last = await publish('warm-up')
    const bareFanout: Record<number, { p50Ms: number; p99Ms: number; errors: number; bytesPerStream: number; roundsMs: readonly number[] }> = {}
    const pipeService = mesh.services.find((s) => s.name === 'instance-events')!
    // The bare fan-out of each size runs right before the pipe's, in the same process state (the
    // flows' heap and the database's load alike), so that the ratio compares like with like.
    for (const n of FANOUT) {
      const bareRun = await fanOut({
        open: { kind: 'bare', address: bare.address, certificates: clientPaths, n },
        ready: () => until(() => bare.subscribers() >= n, () => `the bare server holds ${bare.subscribers()} of ${n} streams`),
        subjectOf: (r) => `round-${n}-${r}`,
        // The bytes a Notify subscriber gets (an event of the same shape and size), decoded by the
        // subscriber the same way: the ratio is what the pipe adds to grpc-js, not the message's own cost.
        publish: (r) => bare.publish(Buffer.from(NotifyResponse.encode({ event: benchEvent(`round-${n}-${r}`, r) }).finish())),
        rounds: ROUNDS,
      })
      bareFanout[n] = { p50Ms: bareRun.p50Ms, p99Ms: bareRun.p99Ms, errors: bareRun.errors, bytesPerStream: bareRun.serverBytesPerStream, roundsMs: bareRun.roundsMs }
      rows.push(figuresRow('bare stream fan-out', `n=${n}`, bareRun, `${round(bareRun.serverBytesPerStream / 1024, 1)} KB/stream (server)`))
      const run = await fanOut({
        open: { kind: 'pipe', address: addresses.get('instance-events')!, certificates: instanceCertificates, n, deviceId: device, afterSequence: String(last) },
        ready: () => until(() => pipeService.introspect().subscribers! >= n, () => `the pipe holds ${pipeService.introspect().subscribers} of ${n} subscribers`),
        subjectOf: (r) => `round-${n}-${r}`,
        publish: async (r) => void (last = await publish(`round-${n}-${r}`)),
        rounds: ROUNDS,
      })
      const bytesPerSubscriber = run.serverBytesPerStream
      const ratioP99 = run.p99Ms / bareFanout[n]!.p99Ms
      pipeResults[n] = { p50Ms: run.p50Ms, p99Ms: run.p99Ms, errors: run.errors, bytesPerSubscriber, ratioP99, roundsMs: run.roundsMs }
      rows.push(figuresRow('pipe fan-out (durable)', `n=${n}`, run, `${round(bytesPerSubscriber / 1024, 1)} KB/subscriber (server); p99 x${round(ratioP99)} of bare`))
    }
    publisher.close()
    echo!.close()
    await bare.stop()
    results.baseline = { ...(results.baseline as object), fanOut: bareFanout }
    results.pipe = pipeResults
    clients.close()
    await mesh.stop()
    await meshDatabase?.stop()
    await telemetry.shutdown()

    // ── Targets (issue #6): met or missed, never asserted in tests ──
    const top = Math.max(...LEVELS)
    const widest = Math.max(...FANOUT)
    // What the machine allows at all, whatever the implementation: a flow verifies one Argon2id
    // password, and its RPCs and commits cost at least their bare floors measured above.
    const floorOf = (flow: 'login' | 'order') => flowResults[flow]![1]!.rpcsPerFlow * baseline[1]!.p50Ms + flowResults[flow]![1]!.commitsPerFlow * commitFloor.p50Ms
    const reachLatency = (flow: 'login' | 'order') => {
      const lowest = passwordHash.p50Ms + floorOf(flow)
      const allowed = 1.5 * floorOf(flow)
      const reachable = lowest <= allowed
      return {
        reachable,
        why: `one Argon2id verify (${round(passwordHash.p50Ms)} ms) + the bare floor (${round(floorOf(flow))} ms) = ${round(lowest)} ms ${reachable ? '<=' : '>'} ${round(allowed)} ms allowed`,
      }
    }
    const order = flowResults.order![top]!
    const neededFlows = (0.6 * baseline[top]!.perSecond) / order.rpcsPerFlow
    const coresNeeded = neededFlows * (passwordHash.cpuMsPerVerify / 1000 + order.rpcsPerFlow / baseline[top]!.perSecond)
    const reachThroughput = {
      reachable: coresNeeded <= cpus().length,
      why: `${round(neededFlows, 0)} flows/s x (${round(passwordHash.cpuMsPerVerify)} ms Argon2id CPU + ${round(order.rpcsPerFlow, 0)} bare RPCs) needs ${round(coresNeeded)} cores before any database work; this machine has ${cpus().length}`,
    }
    const targets = [
      { target: `order flows/s at c=${top} >= 0.6 x (bare RPC/s / RPCs per flow) [PostgreSQL]`, value: order.ratioThroughput, limit: 0.6, atLeast: true, ...reachThroughput },
      {
        target: 'login p50 at c=1 <= 1.5 x (RPCs x bare p50 + commits x commit p50)',
        value: flowResults.login![1]!.ratioLatency!,
        limit: 1.5,
        atLeast: false,
        ...reachLatency('login'),
      },
      {
        target: 'order p50 at c=1 <= 1.5 x (RPCs x bare p50 + commits x commit p50)',
        value: flowResults.order![1]!.ratioLatency!,
        limit: 1.5,
        atLeast: false,
        ...reachLatency('order'),
      },
      // The issue sets these at 10,000 subscribers; a quick run's largest fan-out stands in.
      { target: `pipe fan-out n=${widest}: p99 <= 1.2 x bare p99 (${ROUNDS} rounds)`, value: pipeResults[widest]!.ratioP99, limit: 1.2, atLeast: false },
      { target: `pipe n=${widest}: <= 16 KB server memory per subscriber`, value: pipeResults[widest]!.bytesPerSubscriber / 1024, limit: 16, atLeast: false },
      { target: `pipe n=${widest}: 0 errors`, value: pipeResults[widest]!.errors, limit: 0, atLeast: false },
      { target: `0 errors at c=${top}`, value: flowResults.login![top]!.errors + flowResults.order![top]!.errors, limit: 0, atLeast: false },
    ].map((t) => ({ ...t, met: t.atLeast ? t.value >= t.limit : t.value <= t.limit }))
    inProcessTargets.push(...targets)
  }
  const targets = [...inProcessTargets, ...(shape?.targets ?? []).map((t) => ({ ...t, met: t.atLeast ? t.value >= t.limit : t.value <= t.limit }))]
  results.targets = targets

  // ── Report ──
  process.stdout.write(
    `\ncloudpay bench · ${productionOnly ? 'processes on postgres' : `${database}${production ? ' in-process + processes on postgres' : ''}`} · ${cpus().length} cores · node ${process.version}${quick ? ' · quick' : ''}\n${table(rows)}`,
  )
  const verdict = (t: (typeof targets)[number] & { reachable?: boolean; why?: string }) =>
    `  ${t.met ? 'met   ' : 'MISSED'}  ${t.target}: ${round(t.value)}${!t.met && t.reachable === false ? `\n          out of reach on this machine: ${t.why}` : ''}`
  process.stdout.write(`\ntargets\n${targets.map(verdict).join('\n')}\n`)
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT }).toString().trim()
    } catch {
      return 'unknown'
    }
  })()
  const record = {
    time: new Date().toISOString(),
    commit,
    quick,
    database,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? '?', memoryBytes: totalmem() },
    versions: {
      node: process.version,
      'grpc-js': await pkgVersion('@grpc/grpc-js'),
      kysely: await pkgVersion('kysely'),
      pglite: await pkgVersion('@electric-sql/pglite'),
      pg: await pkgVersion('pg'),
    },
    levels: LEVELS,
    results,
  }
  const dir = process.env.CLOUDPAY_BENCH_RESULTS ?? join(ROOT, 'bench', 'results')
  await mkdir(dir, { recursive: true })
  const file = join(dir, `${record.time.replace(/[:.]/g, '-')}-${commit}-${database}${quick ? '-quick' : ''}.json`)
  await writeFile(file, JSON.stringify(record, null, 2) + '\n')
  process.stdout.write(`\nresult: ${file}\n`)
  await rm(home, { recursive: true, force: true })
}

if (process.argv.includes('--against-running')) {
  // Only the flows, against a mesh someone else started (a replica cluster): no baseline, no mesh of its own.
  const { rows } = await benchAgainstRunning(quick, (line) => process.stderr.write(`${line}\n`))
  process.stdout.write(`\ncloudpay bench · against the running mesh · ${cpus().length} cores · node ${process.version}${quick ? ' · quick' : ''}\n${table(rows)}`)
} else {
  await main()
}
process.exit(0)
