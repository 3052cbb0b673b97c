// N replicas of every service as separate compiled processes (`node dist/cli/service.js <name>`,
// the image's entry point) on one PostgreSQL, wired as the Kubernetes manifests wire them: each
// replica binds its own LISTEN address and a plaintext probe port; every peer is addressed by one
// target naming all replicas of a service (on loopback a static list, ipv4:127.0.0.1:a,127.0.0.1:b,
// where a cluster has dns:///name:port); every replica presents its service's certificate from
// files laid out as cert-manager writes a Secret (ca.crt, tls.crt, tls.key) and shares the data key.
import { type ChildProcess, spawn } from 'node:child_process'
import { copyFile, mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { credentials as grpcCredentials } from '@grpc/grpc-js'
import { HealthCheckResponse_ServingStatus as Serving, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { addressVariable, healthListenVariable, listenVariable, loadConfig, SERVICE_NAMES, type ServiceName } from '../../services/runtime/config.ts'
import { ensureDevCertificate } from '../../services/runtime/dev-certificates.ts'
import { loadSealer } from '../../services/runtime/sealing.ts'

export const ENTRY_POINT = resolve(import.meta.dirname, '../../dist/cli/service.js')

export interface ClusterOptions {
  readonly replicas: number
  readonly databaseUrl: string
  /** Development CA, service certificates, data key, logs, spans and cluster.env live here. */
  readonly home: string
  /** Extra settings for every replica (e.g. a shorter outbox lease). */
  readonly env?: Readonly<Record<string, string>>
}

export interface Replica {
  readonly service: ServiceName
  readonly index: number
  readonly port: number
  readonly healthPort: number
  readonly logFile: string
  process: ChildProcess | undefined
  /** Milliseconds from spawn to the probe port saying SERVING, for the last start. */
  readyMs: number
}

export interface Cluster {
  readonly replicas: readonly Replica[]
  /** What a client (the demo, grpcurl) needs: CLOUDPAY_HOME and every CLOUDPAY_<SVC>_ADDR target. */
  readonly clientEnv: Readonly<Record<string, string>>
  readonly envFile: string
  /** Kills one replica (SIGKILL: no drain, nothing finished) and waits for it to be gone. */
  kill(replica: Replica): Promise<void>
  /** Starts a stopped or killed replica again on its ports and waits until it is ready. */
  start(replica: Replica): Promise<void>
  stop(): Promise<void>
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const home = resolve(options.home)
  await mkdir(join(home, 'logs'), { recursive: true })
  const replicas: Replica[] = []
  const ports = await reservePorts(SERVICE_NAMES.length * options.replicas * 2)
  for (const service of SERVICE_NAMES) {
    for (let index = 0; index < options.replicas; index++) {
      replicas.push({ service, index, port: ports.pop()!, healthPort: ports.pop()!, logFile: join(home, 'logs', `${service}-${index}.log`), process: undefined, readyMs: 0 })
    }
  }
  const targets = Object.fromEntries(
    SERVICE_NAMES.map((name) => [
      addressVariable(name),
      `ipv4:${replicas
        .filter((r) => r.service === name)
        .map((r) => `127.0.0.1:${r.port}`)
        .join(',')}`,
    ]),
  )
  const clientEnv = { CLOUDPAY_HOME: home, CLOUDPAY_TRACE_FILE: join(home, 'traces', 'spans.jsonl'), ...targets }
  // The same CA and data key for every replica (a replica reading another's rows must unseal them).
  const config = loadConfig({ CLOUDPAY_HOME: home })
  await loadSealer(config)
  const dataKey = (await readFile(join(home, 'keys', 'data.key'), 'utf8')).trim()
  const tlsDirs = new Map<ServiceName, string>()
  for (const service of SERVICE_NAMES) tlsDirs.set(service, await secretLayout(home, service))

  const envOf = (replica: Replica): NodeJS.ProcessEnv => {
    const tls = tlsDirs.get(replica.service)!
    return {
      PATH: process.env.PATH,
      ...clientEnv,
      DATABASE_URL: options.databaseUrl,
      CLOUDPAY_LOG_FORMAT: 'json',
      CLOUDPAY_TLS_CA: join(tls, 'ca.crt'),
      CLOUDPAY_TLS_CERT: join(tls, 'tls.crt'),
      CLOUDPAY_TLS_KEY: join(tls, 'tls.key'),
      CLOUDPAY_DATA_KEY: dataKey,
      CLOUDPAY_DRAIN_DELAY_MS: '500',
      [listenVariable(replica.service)]: `127.0.0.1:${replica.port}`,
      [healthListenVariable(replica.service)]: `127.0.0.1:${replica.healthPort}`,
      ...options.env,
    }
  }

  const start = async (replica: Replica): Promise<void> => {
    const log = await open(replica.logFile, 'a')
    const started = performance.now()
    const child = spawn(process.execPath, [ENTRY_POINT, replica.service], { env: envOf(replica), stdio: ['ignore', log.fd, log.fd] })
    await log.close()
    replica.process = child
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, signal) => reject(new Error(`${replica.service} #${replica.index} exited (${signal ?? code}) before it was ready; see ${replica.logFile}`))),
    )
    exited.catch(() => undefined)
    await Promise.race([untilServing(replica.healthPort), exited])
    replica.readyMs = Math.round(performance.now() - started)
  }

  const kill = async (replica: Replica): Promise<void> => {
    const child = replica.process
    replica.process = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await gone
  }

  const stopOne = async (replica: Replica): Promise<void> => {
    const child = replica.process
    replica.process = undefined
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    await gone
    clearTimeout(timer)
  }

  const stop = async (): Promise<void> => {
    await Promise.all(replicas.map(stopOne))
  }

  try {
    // Every replica at once, as a rollout of a fresh cluster does (migrations are locked per schema).
    await Promise.all(replicas.map(start))
  } catch (error) {
    await stop()
    throw error
  }
  const envFile = join(home, 'cluster.env')
  await writeFile(
    envFile,
    Object.entries(clientEnv)
      .map(([k, v]) => `export ${k}='${v}'\n`)
      .join(''),
  )
  return { replicas, clientEnv, envFile, kill, start, stop }
}

/** A service's certificate, CA and key as a cert-manager Secret mounts them. */
async function secretLayout(home: string, service: ServiceName): Promise<string> {
  const dev = await ensureDevCertificate(home, { role: 'service', id: service })
  const dir = join(home, 'tls', service)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  await copyFile(dev.caFile, join(dir, 'ca.crt'))
  await copyFile(dev.certFile, join(dir, 'tls.crt'))
  await copyFile(dev.keyFile, join(dir, 'tls.key'))
  return dir
}

/** Polls the plaintext probe port, as the kubelet's readiness probe does. */
async function untilServing(port: number): Promise<void> {
  // Reconnect at once: grpc-js's default backoff (1 s, growing) would add seconds to every start measured.
  const probe = new HealthClient(`127.0.0.1:${port}`, grpcCredentials.createInsecure(), { 'grpc.initial_reconnect_backoff_ms': 20, 'grpc.max_reconnect_backoff_ms': 50 })
  try {
    for (;;) {
      const status = await unaryCall(probe, 'check', { service: '' }, { deadlineMs: 1_000 }).then(
        (r) => r.status,
        () => undefined,
      )
      if (status === Serving.SERVING) return
      await sleep(25)
    }
  } finally {
    probe.close()
  }
}

/**
 * `count` distinct free ports below the kernel's ephemeral range (32768-60999), so no outgoing
 * connection (a replica's database pool) can hold one by the time its replica binds it: each is
 * held open until all are found, then released.
 */
async function reservePorts(count: number): Promise<number[]> {
  const held: Server[] = []
  let port = 20_000 + Math.floor(Math.random() * 10_000)
  while (held.length < count && port < 32_768) {
    const server = await new Promise<Server | undefined>((resolve) => {
      const candidate = createServer()
      candidate.once('error', () => resolve(undefined))
      candidate.listen(port, '127.0.0.1', () => resolve(candidate))
    })
    if (server) held.push(server)
    port++
  }
  if (held.length < count) throw new Error(`found only ${held.length} of ${count} free ports below 32768`)
  const found = held.map((s) => (s.address() as { port: number }).port)
  await Promise.all(held.map((s) => new Promise((resolve) => s.close(resolve))))
  return found
}

/** Resident memory (MiB) and CPU time (s) of a live replica, from /proc. */
export async function usageOf(replica: Replica): Promise<{ rssMiB: number; cpuSeconds: number } | undefined> {
  const pid = replica.process?.pid
  if (!pid) return undefined
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ')
    const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    // utime and stime (fields 14 and 15 of stat) in clock ticks (100 per second on Linux).
    return { rssMiB: Math.round(rssKiB / 1024), cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100 }
  } catch {
    return undefined
  }
}
