// Starting one service the same way everywhere (its own process, the all-in-one mesh, tests):
// identity certificate -> schema migrations -> shared parts, handlers, workers -> mTLS server.
import type { Tracer } from '@opentelemetry/api'
import type { Kysely } from 'kysely'
import { type Rule, type Rules, rulesByPath } from './authz.ts'
import { type Clock, systemClock } from './clock.ts'
import { type Config, ConfigError, isPlainAddress, listenVariable, type ServiceName } from './config.ts'
import { type Migration, type SharedDatabase, forSchema, migrateSchema } from './database.ts'
import type { Identity } from './identity.ts'
import type { Logger } from './logger.ts'
import { Peers } from './peers.ts'
import { isRetentionWorker, type RetentionWorker } from './retention.ts'
import { type Handlers, implement } from './rpc.ts'
import { type HostedService, type RunningServer, startServer } from './server.ts'
import type { Telemetry } from './telemetry.ts'
import type { Sealer } from './sealing.ts'
import { type CertificatePaths, certificateFiles, certificatesLoaded, channelCredentials, serverCredentials } from './tls.ts'
import type { Worker } from './workers.ts'

/** What every service's handlers and workers get to work with; `db` is typed by the service's tables. */
export interface ServiceDeps<Database> {
  readonly config: Config
  /** The service's own schema. */
  readonly db: Kysely<Database>
  /** The time the service's rules use (expiries, TTLs); tests move a ManualClock. */
  readonly clock: Clock
  readonly log: Logger
  readonly tracer: Tracer
  /** Clients of the other services, authenticated as this service. */
  readonly peers: Peers
  /** LISTEN on a database channel (every replica sharing the database hears each NOTIFY). */
  readonly listen: SharedDatabase['listen']
  /** Told when the database becomes unreachable or reachable again (long-lived streams end on loss). */
  readonly onDatabaseAvailability: SharedDatabase['onAvailabilityChange']
  /** Seals account numbers at rest. */
  readonly sealer: Sealer
  /** This service's certificate files (its key signs what it vouches for, e.g. payment results). */
  readonly certificate: CertificatePaths
}

/** A service as the host sees it: its name, schema, migrations and how to build its gRPC service. */
export interface ServiceSpec {
  readonly name: ServiceName
  /** PostgreSQL schema it owns, e.g. account_management. */
  readonly schema: string
  readonly migrations: Readonly<Record<string, Migration>>
  /** Full proto name of the gRPC service. */
  readonly protoName: string
  /** Every RPC with its authorization rule (what docs/authorization.md and the matrix test read). */
  readonly methods: readonly MethodAccess[]
  build(deps: Omit<ServiceDeps<unknown>, 'db'>, database: SharedDatabase): BuiltService
}

/** A service built for one start: its gRPC service, the workers the host runs beside it, its gauges. */
export interface BuiltService {
  readonly hosted: HostedService
  readonly workers: readonly Worker[]
  introspect(): Record<string, number>
}

export interface MethodAccess {
  /** The proto RPC name, e.g. SubmitOrder. */
  readonly name: string
  /** "/pkg.Service/Method" */
  readonly path: string
  readonly responseStream: boolean
  readonly rule: Rule
}

export interface HostContext {
  readonly config: Config
  readonly database: SharedDatabase
  readonly telemetry: Telemetry
  readonly log: Logger
  /** Where each service listens; updated with the real port once a service binds. */
  readonly addresses: Map<ServiceName, string>
  readonly sealer: Sealer
  /** Given to every service as deps.clock; the system clock unless a test brings its own. */
  readonly clock?: Clock
}

/** The address book from configuration. */
export function addressBook(config: Config): Map<ServiceName, string> {
  return new Map(Object.entries(config.addresses) as [ServiceName, string][])
}

export interface RunningService {
  readonly name: ServiceName
  readonly address: string
  readonly port: number
  readonly server: RunningServer
  /** Its background work, in the order started. */
  readonly workers: readonly Worker[]
  /** Its retention purge among them, if it has one (tests run a pass with runNow). */
  readonly retention: RetentionWorker | undefined
  /** Internal gauges of the service (e.g. open subscribers), for tests and diagnostics. */
  introspect(): Record<string, number>
  stop(): Promise<void>
}

export async function startService(spec: ServiceSpec, host: HostContext): Promise<RunningService> {
  const advertised = host.addresses.get(spec.name) ?? host.config.addresses[spec.name]
  const address = listenAddress(spec.name, advertised, host.config)
  const identity: Identity = { role: 'service', id: spec.name }
  const paths = await certificateFiles(host.config, identity)
  const log = host.log.child({ service: spec.name })
  const migrations = await migrateSchema(host.database, spec.schema, spec.migrations)
  if (migrations.applied.length > 0) log.info({ schema: spec.schema, applied: migrations.applied }, 'migrations applied')
  const tracer = host.telemetry.tracer(spec.name)
  const peers = new Peers(host.addresses, channelCredentials(paths, host.config.tlsRefreshMs), tracer)
  const built = spec.build(
    {
      config: host.config,
      clock: host.clock ?? systemClock,
      log,
      tracer,
      peers,
      listen: host.database.listen,
      onDatabaseAvailability: host.database.onAvailabilityChange,
      sealer: host.sealer,
      certificate: paths,
    },
    host.database,
  )
  // Workers run before the server takes calls (a LISTEN hub is listening when the first stream opens).
  const started: Worker[] = []
  let server: RunningServer
  try {
    for (const worker of built.workers) {
      await worker.start()
      started.push(worker)
    }
    await certificatesLoaded(paths, host.config.tlsRefreshMs)
    server = await startServer({
      address,
      credentials: serverCredentials(paths, host.config.tlsRefreshMs),
      services: [built.hosted],
      log,
      healthAddress: host.config.healthListen[spec.name],
      maxStreamsPerCaller: host.config.events.maxStreamsPerCaller,
    })
  } catch (error) {
    await stopWorkers(started, log)
    peers.close()
    throw error
  }
  const bound = `${address.slice(0, address.lastIndexOf(':'))}:${server.port}`
  // Listening where peers reach it (one machine): peers in this process use the port bound (port 0
  // in tests). A separately advertised target (dns:///, a replica list) stays as configured.
  if (address === advertised) host.addresses.set(spec.name, bound)
  // A service cannot work without its database: health says so while it is away.
  server.health.setAllServing(host.database.available())
  const unwatch = host.database.onAvailabilityChange((available) => {
    log.warn({ database: available ? 'reachable' : 'unreachable' }, available ? 'database reachable again: serving' : 'database unreachable: not serving')
    server.health.setAllServing(available)
  })
  return {
    name: spec.name,
    address: bound,
    port: server.port,
    server,
    workers: built.workers,
    retention: built.workers.find(isRetentionWorker),
    introspect: built.introspect,
    async stop() {
      unwatch()
      // Readiness first: balancers and probes see NOT_SERVING while calls are still accepted.
      await server.drain(host.config.drainDelayMs)
      // Background work first: long-lived streams end, so in-flight unary calls are all that remain.
      await stopWorkers(built.workers, log)
      await server.shutdown(host.config.shutdownGraceMs)
      peers.close()
    },
  }
}

/** Stops workers in reverse order of their start (a later one may use an earlier one, e.g. kick an outbox). */
async function stopWorkers(workers: readonly Worker[], log: Logger): Promise<void> {
  for (const worker of [...workers].reverse()) {
    try {
      await worker.stop()
    } catch (error) {
      log.warn({ err: error, worker: worker.name }, 'stopping a worker failed')
    }
  }
}

/** Where a replica binds: its LISTEN setting, else its own address when that is a plain host:port. */
function listenAddress(name: ServiceName, advertised: string, config: Config): string {
  const listen = config.listen[name]
  if (listen) return listen
  if (isPlainAddress(advertised)) return advertised
  throw new ConfigError(`${listenVariable(name)} must be set: the service's address ${JSON.stringify(advertised)} names its peers, not where this replica listens`)
}

type MethodsOf = Record<string, { path: string; requestStream: boolean; responseStream: boolean }>

/**
 * A service's declaration. `Database` (its tables) is taken from the deps its parts declare, e.g.
 * `createHandlers(deps: ServiceDeps<AccountDatabase>)`, so `deps.db` needs no cast anywhere.
 */
export interface ServiceDeclaration<Definition extends MethodsOf, Database, Shared> {
  readonly name: ServiceName
  readonly schema: string
  readonly protoName: string
  readonly definition: Definition
  readonly migrations: Readonly<Record<string, Migration>>
  readonly rules: Rules<Definition>
  /** Built once per start: what handlers and workers both use (an outbox to kick, a subscriber hub). */
  readonly shared?: (deps: ServiceDeps<Database>) => Shared
  /** One function per RPC, nothing else. */
  readonly createHandlers: (deps: ServiceDeps<Database>, shared: Shared) => Handlers<Definition>
  /**
   * Background work (outbox, sweepers, LISTEN hub, retention purge): started in this order before
   * the server takes calls, stopped in reverse once it has drained, before it shuts down.
   */
  readonly workers?: (deps: ServiceDeps<Database>, shared: Shared) => readonly Worker[]
  /** Internal gauges (e.g. open subscribers, dead letters), for tests and diagnostics. */
  readonly introspect?: (shared: Shared) => Record<string, number>
}

/** Declares a service from its generated definition, rules, shared parts, handlers and workers. */
export function defineService<Definition extends MethodsOf, Database, Shared = undefined>(parts: ServiceDeclaration<Definition, Database, Shared>): ServiceSpec {
  return {
    name: parts.name,
    schema: parts.schema,
    migrations: parts.migrations,
    protoName: parts.protoName,
    methods: Object.entries(parts.definition).map(([key, method]) => ({
      name: method.path.slice(method.path.lastIndexOf('/') + 1),
      path: method.path,
      responseStream: method.responseStream,
      rule: parts.rules[key as keyof Definition],
    })),
    build: (common, database) => {
      const deps: ServiceDeps<Database> = { ...common, db: forSchema<Database>(database, parts.schema) }
      const shared = parts.shared?.(deps) as Shared
      return {
        hosted: {
          protoName: parts.protoName,
          definition: parts.definition,
          implementation: implement(parts.definition, parts.createHandlers(deps, shared), deps),
          rules: rulesByPath(parts.definition, parts.rules),
        },
        workers: parts.workers?.(deps, shared) ?? [],
        introspect: () => parts.introspect?.(shared) ?? {},
      }
    },
  }
}
