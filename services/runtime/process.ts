// Running services in this process until SIGINT/SIGTERM: config -> telemetry -> database ->
// each service (migrations, mTLS server) -> clean shutdown (in-flight calls finish, database closed).
import type { Clock } from './clock.ts'
import { loadConfig, type Config } from './config.ts'
import { databaseLocation, openDatabase, type SharedDatabase } from './database.ts'
import { createLogger, type Logger } from './logger.ts'
import { loadSealer } from './sealing.ts'
import { addressBook, type RunningService, type ServiceSpec, startService } from './service-host.ts'
import { startTelemetry, type Telemetry } from './telemetry.ts'
import { stopOnSignals } from './signals.ts'

export interface Mesh {
  readonly config: Config
  readonly services: readonly RunningService[]
  readonly log: Logger
  readonly database: SharedDatabase
  readonly telemetry: Telemetry
  /** Stops one service and starts it again on the same address and database; `whileDown` runs in between. */
  restart(name: ServiceSpec['name'], whileDown?: () => Promise<void>): Promise<RunningService>
  /** Stops one service; the returned function starts it again (so outages of several services can overlap). */
  takeDown(name: ServiceSpec['name']): Promise<() => Promise<RunningService>>
  stop(): Promise<void>
}

export interface StartOptions {
  readonly config?: Config
  readonly telemetry?: Telemetry
  readonly log?: Logger
  /** The services' clock (tests move a ManualClock); the system clock by default. */
  readonly clock?: Clock
}

/** Starts the given services in this process, sharing one database and one telemetry pipeline. */
export async function startMesh(specs: readonly ServiceSpec[], options: StartOptions = {}): Promise<Mesh> {
  const config = options.config ?? loadConfig()
  const pretty = config.logFormat === 'pretty' || (config.logFormat === 'auto' && process.stdout.isTTY === true)
  const log = options.log ?? createLogger({ level: config.logLevel, name: 'cloudpay', pretty })
  const telemetry =
    options.telemetry ?? startTelemetry({ spanFile: config.traceFile, onExportTrouble: (message, error) => log.warn({ error: error?.message }, message) })
  const database = await openDatabase(databaseLocation(config.home, config.databaseUrl, config.database, config.pgliteTemplates))
  const addresses = addressBook(config)
  const sealer = await loadSealer(config)
  const services: RunningService[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(services.map((s) => s.stop()))
    await database.release()
    if (!options.telemetry) await telemetry.shutdown()
  }
  try {
    // One after another: migrations of different schemas need not contend for the embedded database.
    for (const spec of specs) services.push(await startService(spec, { config, database, telemetry, log, addresses, sealer, clock: options.clock }))
  } catch (error) {
    await stop()
    throw error
  }
  const takeDown = async (name: ServiceSpec['name']): Promise<() => Promise<RunningService>> => {
    const index = services.findIndex((s) => s.name === name)
    const spec = specs.find((s) => s.name === name)
    if (index < 0 || !spec) throw new Error(`${name} is not running here`)
    await services[index]!.stop()
    return async () => {
      const again = await startService(spec, { config, database, telemetry, log, addresses, sealer, clock: options.clock })
      services[index] = again
      return again
    }
  }
  const restart = async (name: ServiceSpec['name'], whileDown?: () => Promise<void>): Promise<RunningService> => {
    const bringUp = await takeDown(name)
    await whileDown?.()
    return bringUp()
  }
  return { config, services, log, database, telemetry, restart, takeDown, stop }
}

/** The entry point of `npm start` and of each service's main.ts. */
export async function runServiceProcess(specs: readonly ServiceSpec[], afterStart?: (mesh: Mesh) => Promise<void> | void): Promise<void> {
  let mesh: Mesh
  try {
    mesh = await startMesh(specs)
  } catch (error) {
    // A clear line instead of a stack: the usual causes are a port in use or a bad setting.
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`cloudpay failed to start: ${message}\n`)
    process.exit(1)
  }
  stopOnSignals(() => mesh.stop(), {
    stopping: (signal) => mesh.log.info({ signal }, 'shutting down: finishing in-flight calls'),
    stopped: () => mesh.log.info('stopped'),
    failed: (error) => mesh.log.error({ err: error }, 'shutdown failed'),
  })
  mesh.log.info({ services: mesh.services.map((s) => ({ name: s.name, address: s.address })), database: mesh.database.kind }, 'serving')
  await afterStart?.(mesh)
}
