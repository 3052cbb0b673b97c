// `npm run cluster -- --replicas 2`: N replicas of every service, each its own compiled process,
// on a throwaway PostgreSQL (or DATABASE_URL), wired as the Kubernetes manifests wire them.
// Prints the table and a line to source for the demo or grpcurl; Ctrl-C (or SIGTERM) stops it all.
import { execFileSync } from 'node:child_process'
import { relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { clusterDatabase } from './cluster/postgres.ts'
import { type Cluster, startCluster, usageOf } from './cluster/replicas.ts'
import { stopOnSignals } from '../services/runtime/signals.ts'

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '2' },
    home: { type: 'string', default: process.env.CLOUDPAY_CLUSTER_HOME ?? '.cloudpay/cluster' },
  },
})
const replicas = Number(values.replicas)
if (!Number.isInteger(replicas) || replicas < 1 || replicas > 8) {
  process.stderr.write(`--replicas must be an integer from 1 to 8, got ${JSON.stringify(values.replicas)}\n`)
  process.exit(2)
}

// The image's entry point, compiled: what runs is what ships.
execFileSync('sh', [resolve(import.meta.dirname, '../scripts/build.sh')], { stdio: 'inherit' })
const database = await clusterDatabase(process.env.DATABASE_URL || undefined)
let cluster: Cluster
try {
  cluster = await startCluster({ replicas, databaseUrl: database.url, home: values.home! })
} catch (error) {
  await database.stop()
  process.stderr.write(`the cluster failed to start: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(1)
}

const rows = await Promise.all(
  cluster.replicas.map(async (r) => {
    const usage = await usageOf(r)
    return `  ${`${r.service} #${r.index}`.padEnd(24)} ${String(r.process?.pid ?? '-').padEnd(8)} ${`127.0.0.1:${r.port}`.padEnd(17)} ${String(r.healthPort).padEnd(8)} ${`${r.readyMs} ms`.padEnd(9)} ${usage ? `${usage.rssMiB} MiB` : '-'}`
  }),
)
const show = (file: string): string => relative(process.cwd(), file) || file
process.stdout.write(
  [
    '',
    `cloudpay cluster is up: ${replicas} replica(s) of every service on ${database.throwaway ? 'a throwaway PostgreSQL' : 'DATABASE_URL'} (${database.url.replace(/\/\/[^@]*@/, '//')})`,
    '',
    `  ${'replica'.padEnd(24)} ${'pid'.padEnd(8)} ${'mTLS address'.padEnd(17)} ${'probe'.padEnd(8)} ${'ready'.padEnd(9)} rss`,
    ...rows,
    '',
    'Peers reach each service through one target naming all its replicas, balanced round-robin:',
    ...Object.entries(cluster.clientEnv)
      .filter(([k]) => k.endsWith('_ADDR'))
      .map(([k, v]) => `  ${k}=${v}`),
    '',
    `The demo against it (another shell):  . ${show(cluster.envFile)} && npm run demo`,
    `Logs: ${show(resolve(values.home!, 'logs'))}/<service>-<n>.log.  Ctrl-C stops every replica${database.throwaway ? ' and the database' : ''}.`,
    '',
  ].join('\n'),
)

stopOnSignals(() => cluster.stop().then(() => database.stop()), {
  stopping: (signal) => process.stdout.write(`\n${signal}: draining and stopping every replica...\n`),
  stopped: () => process.stdout.write('cluster stopped\n'),
  failed: (error) => process.stderr.write(`stopping failed: ${String(error)}\n`),
})
