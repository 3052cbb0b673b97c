// Starting one service the same way everywhere (its own process, the all-in-one mesh, tests):
// identity certificate -> schema migrations -> handlers -> mTLS server.
import type { Tracer } from '@opentelemetry/api'
import type { Kysely } from 'kysely'
import { type Rule, type Rules, rulesByPath } from './authz.ts'
import { type Config, ConfigError, isPlainAddress, listenVariable, type ServiceName } from './config.ts'
import { type Migration, type SharedDatabase, forSchema, migrateSchema } from './database.ts'
import type { Identity } from './identity.ts'
import type { Logger } from './logger.ts'
import { Peers } from './peers.ts'
import { type Purge, type RetentionWorker, startRetention } from './retention.ts'
import { type Handlers, implement } from './rpc.ts'
import { type HostedService, type RunningServer, startServer } from './server.ts'
import type { Telemetry } from './telemetry.ts'
import type { Sealer } from './sealing.ts'
import { type CertificatePaths, certificateFiles, certificatesLoaded, channelCredentials, serverCredentials } from './tls.ts'

/** What every service's handlers get to work with. */
export interface ServiceDeps {
  readonly config: Config
  /** The service's own schema. */
  readonly db: Kysely<any>
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
  build(deps: ServiceDeps): BuiltService
}

/** A hosted service with the background work the host started for it. */
export interface BuiltService extends HostedService {
  /** Its retention purge (started with it, stopped in onStop), if it keeps anything that expires. */
  readonly retention?: RetentionWorker
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
  /** Its background retention purge, if it has one (tests run a pass with runNow). */
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
  const hosted = spec.build({
    config: host.config,
    db: forSchema(host.database, spec.schema),
    log,
    tracer,
    peers,
    listen: host.database.listen,
    onDatabaseAvailability: host.database.onAvailabilityChange,
    sealer: host.sealer,
    certificate: paths,
  })
  await certificatesLoaded(paths, host.config.tlsRefreshMs)
  const server = await startServer({
    address,
    credentials: serverCredentials(paths, host.config.tlsRefreshMs),
    services: [hosted],
    log,
    healthAddress: host.config.healthListen[spec.name],
  })
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
    retention: hosted.retention,
    introspect: () => hosted.introspect?.() ?? {},
    async stop() {
      unwatch()
      // Readiness first: balancers and probes see NOT_SERVING while calls are still accepted.
      await server.drain(host.config.drainDelayMs)
      // Background work first: long-lived streams end, so in-flight unary calls are all that remain.
      await hosted.onStop?.()
      await server.shutdown(host.config.shutdownGraceMs)
      peers.close()
    },
  }
}

/** Where a replica binds: its LISTEN setting, else its own address when that is a plain host:port. */
function listenAddress(name: ServiceName, advertised: string, config: Config): string {
  const listen = config.listen[name]
  if (listen) return listen
  if (isPlainAddress(advertised)) return advertised
  throw new ConfigError(`${listenVariable(name)} must be set: the service's address ${JSON.stringify(advertised)} names its peers, not where this replica listens`)
}

/** Handlers plus what a service runs beside them (background work to stop, gauges to read). */
export interface ServiceParts<Definition> {
  readonly handlers: Handlers<Definition>
  onStop?(): Promise<void>
  introspect?(): Record<string, number>
}

/** Declares a service from its generated definition, rules and handlers. */
export function defineService<Definition extends Record<string, { path: string; requestStream: boolean; responseStream: boolean }>>(parts: {
  readonly name: ServiceName
  readonly schema: string
  readonly protoName: string
  readonly definition: Definition
  readonly migrations: Readonly<Record<string, Migration>>
  readonly rules: Rules<Definition>
  readonly createHandlers: (deps: ServiceDeps) => Handlers<Definition> | ServiceParts<Definition>
  /** What the service forgets, and after how long (runtime/retention.ts); purged in the background. */
  readonly retention?: (deps: ServiceDeps) => readonly Purge[]
}): ServiceSpec {
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
    build: (deps) => {
      const created = parts.createHandlers(deps)
      const service: ServiceParts<Definition> =
        'handlers' in created && typeof created.handlers === 'object' ? (created as ServiceParts<Definition>) : { handlers: created as Handlers<Definition> }
      const kinds = parts.retention?.(deps) ?? []
      const retention = kinds.length > 0 ? startRetention({ kinds, intervalMs: deps.config.retention.intervalMs, log: deps.log }) : undefined
      return {
        protoName: parts.protoName,
        definition: parts.definition,
        implementation: implement(parts.definition, service.handlers, deps),
        rules: rulesByPath(parts.definition, parts.rules),
        async onStop() {
          await retention?.stop()
          await service.onStop?.()
        },
        introspect: service.introspect,
        retention,
      }
    },
  }
}
