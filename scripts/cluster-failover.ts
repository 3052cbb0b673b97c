// CI (and by hand): the demo against a two-replica cluster of compiled processes on PostgreSQL,
// killing one replica of every service (SIGKILL: no drain) in the middle of each run. The demo
// must complete with nothing lost: the order effective once, the money moved once, the items
// delivered once. Killed replicas come back one at a time (each timed to healthy), and the second
// run kills the other replicas. Then every replica stops on SIGTERM within its grace.
//   node --import tsx scripts/cluster-failover.ts        (DATABASE_URL, or a throwaway PostgreSQL)
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { clusterDatabase } from '../cli/cluster/postgres.ts'
import { type Cluster, type Replica, startCluster, usageOf } from '../cli/cluster/replicas.ts'
import { demoClients } from '../cli/demo/clients.ts'
import { type DemoSummary, runDemo } from '../cli/demo/run.ts'
import { OPERATOR } from '../cli/demo/steps.ts'
import { certificateFiles } from '../services/runtime/tls.ts'
import { loadConfig } from '../services/runtime/config.ts'
import { addressBook } from '../services/runtime/service-host.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'

/**
 * The compiled entry point's start to healthy, one replica at a time beside the running cluster
 * (issue 15: <= 3 s). The median must meet it; any single start may take up to 10 s, since this
 * 2-core machine is shared and a start is mostly CPU (module loading, TLS, migration check).
 */
const START_BUDGET_MS = Number(process.env.CLOUDPAY_START_BUDGET_MS ?? 3_000)
const START_LIMIT_MS = 10_000
const restartMs: number[] = []

execFileSync('sh', [resolve(import.meta.dirname, 'build.sh')], { stdio: 'inherit' })
// A database of its own on that server: nothing another step left there (data sealed under another key).
const database = await clusterDatabase(process.env.DATABASE_URL || undefined, { fresh: true })
const home = await mkdtemp(join(tmpdir(), 'cloudpay-cluster-'))
let cluster: Cluster | undefined
const telemetry = startTelemetry({ env: {} })
let failed = false
try {
  // A delivery a killed replica had claimed waits out its lease before a survivor takes it: keep
  // the lease (above a call's 10 s deadline) under the demo's 15 s wait for each event.
  cluster = await startCluster({ replicas: 2, databaseUrl: database.url, home, env: { CLOUDPAY_OUTBOX_LEASE_MS: '12000' } })
  console.log(`cluster up: ${cluster.replicas.length} replicas (${cluster.replicas.map((r) => `${r.service}#${r.index} ${r.readyMs} ms`).join(', ')})`)
  const config = loadConfig({ ...cluster.clientEnv, CLOUDPAY_TRACE_FILE: 'off' })

  for (const [round, victimIndex, atStep] of [
    [1, 0, '── 5.'],
    [2, 1, '── 2.'],
    // The pushed payment: the claim and the sealed relay across a failover.
    [3, 0, '── 9.'],
  ] as const) {
    const victims = cluster.replicas.filter((r) => r.index === victimIndex)
    const clients = demoClients(config, addressBook(config), telemetry)
    let killing: Promise<void> | undefined
    let summary: DemoSummary
    const { caFile } = await certificateFiles(config, OPERATOR)
    try {
      summary = await runDemo(
        clients,
        (party) => telemetry.tracer(party),
        (line) => {
          if (line.startsWith(atStep) && !killing) {
            console.log(`round ${round}: at "${line.slice(0, 40)}…" killing replica #${victimIndex} of every service`)
            killing = Promise.all(victims.map((v) => cluster!.kill(v))).then(() => undefined)
          }
        },
        { caFile },
      )
    } finally {
      clients.close()
    }
    assert.ok(killing, `round ${round}: the demo never reached ${atStep}`)
    await killing
    nothingLost(summary, round)
    console.log(
      `round ${round}: demo completed with ${victims.length} replicas killed mid-way; orders ${summary.order.orderId} and ${summary.pushedOrder.orderId} (pushed) effective, money and items moved exactly once`,
    )
    for (const victim of victims) {
      await cluster.start(victim)
      console.log(`  ${victim.service}#${victim.index} back: healthy ${victim.readyMs} ms after spawn`)
      assert.ok(victim.readyMs <= START_LIMIT_MS, `${victim.service}#${victim.index} took ${victim.readyMs} ms to healthy (limit ${START_LIMIT_MS} ms)`)
      restartMs.push(victim.readyMs)
    }
  }
  const sorted = [...restartMs].sort((a, b) => a - b)
  const median = sorted[Math.floor(sorted.length / 2)]!
  console.log(`compiled entry points, start to healthy (one at a time): median ${median} ms, max ${sorted.at(-1)} ms over ${sorted.length} starts`)
  assert.ok(median <= START_BUDGET_MS, `median start to healthy ${median} ms is over the ${START_BUDGET_MS} ms budget`)
  for (const r of cluster.replicas) {
    const usage = await usageOf(r)
    if (usage) console.log(`  ${`${r.service}#${r.index}`.padEnd(22)} rss ${usage.rssMiB} MiB, cpu ${usage.cpuSeconds.toFixed(2)} s`)
  }
  const survivors = cluster.replicas.filter((r) => r.process)
  await cluster.stop()
  await stoppedCleanly(survivors)
  console.log('every replica drained and stopped on SIGTERM')
} catch (error) {
  failed = true
  console.error(`cluster failover FAILED: ${error instanceof Error ? error.stack : String(error)}`)
  if (cluster)
    for (const r of cluster.replicas) console.error(`--- ${r.logFile} (last lines)\n${(await readFile(r.logFile, 'utf8').catch(() => '')).split('\n').slice(-6).join('\n')}`)
} finally {
  await cluster?.stop()
  await telemetry.shutdown()
  await database.stop()
}
process.exit(failed ? 1 : 0)

/** Both orders effective, the payer charged and the shop credited each amount exactly once, the items delivered once. */
function nothingLost(summary: DemoSummary, round: number): void {
  for (const payment of [summary.order, summary.pushedOrder]) {
    const amount = BigInt(payment.amount.amountMinor)
    assert.equal(payment.state, 'ORDER_STATE_EFFECTIVE', `round ${round}: ${payment.path}: order ${payment.state}`)
    assert.equal(BigInt(payment.balances.payerBefore) - BigInt(payment.balances.payerAfter), amount, `round ${round}: ${payment.path}: payer charged once`)
    assert.equal(BigInt(payment.balances.merchantAfter) - BigInt(payment.balances.merchantBefore), amount, `round ${round}: ${payment.path}: shop credited once`)
  }
  assert.deepEqual(summary.inventory, { 'gem-pack-550': '2', 'gem-pack-100': '1' }, `round ${round}: the items delivered once: ${JSON.stringify(summary.inventory)}`)
}

async function stoppedCleanly(replicas: readonly Replica[]): Promise<void> {
  for (const r of replicas) {
    const log = await readFile(r.logFile, 'utf8')
    assert.match(log.split('\n').slice(-3).join('\n'), /"msg":"stopped"/, `${r.service}#${r.index} did not stop cleanly`)
  }
}
