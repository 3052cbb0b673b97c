// Starting the production shape's processes: each service on its own (as `npm run service -- <name>`
// does), or the whole mesh as `npm start`. One place decides the command line, so a compiled build
// (`node dist/...`, the default) or tsx (CLOUDPAY_BENCH_SERVICE_ENTRY=tsx) is chosen here only.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'
import { once } from 'node:events'
import { connect } from 'node:net'
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import type { ServiceName } from '../../services/runtime/config.ts'
import type { CertificatePaths } from '../../services/runtime/dev-certificates.ts'
import { channelCredentials } from '../../services/runtime/tls.ts'

const ROOT = new URL('../..', import.meta.url).pathname
const COUNTERS = new URL('./counters.mjs', import.meta.url).pathname

/** What the counters preload reports (bench/production/counters.mjs). */
export interface Counters {
  readonly rpcs: number
  readonly commits: number
  readonly allCommits: number
  readonly rollbacks: number
  readonly statements: number
}

export interface Launched {
  readonly pid: number
  readonly child: ChildProcess
  /** The process's own RPC and commit counts (services only). */
  counters(): Promise<Counters>
  /** What it printed, for a failure message. */
  output(): string
  stop(): Promise<void>
}

const COMPILED_ENTRY = join(ROOT, 'dist/cli/service.js')

/**
 * What each service process runs: the compiled build, as the image and `npm run cluster` run it
 * (the default), `CLOUDPAY_BENCH_SERVICE_ENTRY=tsx` for cli/service.ts through tsx as
 * `npm run service` does, or another entry file it names.
 */
export function serviceEntry(): string {
  return process.env.CLOUDPAY_BENCH_SERVICE_ENTRY || COMPILED_ENTRY
}
export const runsThroughTsx = (): boolean => serviceEntry() === 'tsx'

/** Compiles dist/ once when the shape runs the compiled build (it must be the code under test). */
export function buildIfCompiled(): void {
  if (serviceEntry() === COMPILED_ENTRY) execFileSync('sh', ['scripts/build.sh'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] })
}

/** The command line of one service process. */
export function serviceCommand(name: ServiceName): { command: string; args: string[] } {
  if (!runsThroughTsx()) return { command: process.execPath, args: ['--import', COUNTERS, serviceEntry(), name] }
  return { command: process.execPath, args: ['--import', 'tsx', '--import', COUNTERS, 'cli/service.ts', name] }
}

export function launchService(name: ServiceName, env: NodeJS.ProcessEnv): Launched {
  const { command, args } = serviceCommand(name)
  return launched(spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }), false)
}

/** `npm start -- --no-demo`, in a process group of its own (npm does not pass signals on). */
export function launchNpmStart(env: NodeJS.ProcessEnv): Launched {
  return launched(spawn('npm', ['start', '--', '--no-demo'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] }), true)
}

/** Any other process of the bench (the load generator, the peer), forked through tsx with IPC. */
export function launchScript(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Launched {
  return launched(spawn(process.execPath, ['--import', 'tsx', file, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }), false)
}

/** A plain JavaScript script in the runtime the services run on: node, or node and tsx. */
export function launchLikeServices(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Launched {
  const runtime = runsThroughTsx() ? ['--import', 'tsx'] : []
  return launched(spawn(process.execPath, [...runtime, file, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }), false)
}

function launched(child: ChildProcess, group: boolean): Launched {
  let output = ''
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const exited = once(child, 'exit')
  return {
    pid: child.pid!,
    child,
    counters: () =>
      new Promise<Counters>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no counters from pid ${child.pid}`)), 10_000)
        const answer = (message: { counters?: Counters }) => {
          if (!message.counters) return
          clearTimeout(timer)
          child.off('message', answer)
          resolve(message.counters)
        }
        child.on('message', answer)
        child.send('counters')
      }),
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      const kill = (signal: NodeJS.Signals) => {
        try {
          if (group) process.kill(-child.pid!, signal)
          else child.kill(signal)
        } catch {
          // already gone
        }
      }
      kill('SIGTERM')
      const timer = setTimeout(() => kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** The first IPC message of a launched process; rejects (with its output) if it exits first. */
export async function firstMessage<T>(launched: Launched): Promise<T> {
  const [message] = (await Promise.race([
    once(launched.child, 'message'),
    once(launched.child, 'exit').then(() => Promise.reject(new Error(`process ${launched.pid} exited:\n${launched.output()}`))),
  ])) as [T]
  return message
}

/** A free loopback port (bound and released: the services bind it right after). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net')
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  server.close()
  await once(server, 'close')
  return port
}

async function accepts(port: number): Promise<boolean> {
  const socket = connect(port, '127.0.0.1')
  try {
    await Promise.race([once(socket, 'connect'), once(socket, 'error').then(() => Promise.reject(new Error('refused')))])
    return true
  } catch {
    return false
  } finally {
    socket.destroy()
  }
}

/**
 * Resolves once the server on `port` answers grpc.health.v1 Check with SERVING. A service binds
 * its port only when it can serve (migrated, certificates loaded), so the port is probed every
 * 10 ms first: a gRPC channel's reconnect backoff (1 s and up) would blur a start-up time.
 */
export async function untilHealthy(port: number, certificates: CertificatePaths, process_: Launched, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (process_.child.exitCode !== null) throw new Error(`process ${process_.pid} exited before serving:\n${process_.output()}`)
    if (Date.now() > deadline) throw new Error(`port ${port} not healthy in ${timeoutMs} ms:\n${process_.output()}`)
    if (await accepts(port)) {
      const health = createClient(HealthClient, `127.0.0.1:${port}`, channelCredentials(certificates, 60_000))
      try {
        const reply = await unaryCall(health, 'check', { service: '' }, { deadlineMs: 5_000 })
        if (reply.status === HealthCheckResponse_ServingStatus.SERVING) return
      } catch {
        // not yet
      } finally {
        health.close()
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
