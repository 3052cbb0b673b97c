// Starts services in-process on 127.0.0.1:0 with fresh certificates and a fresh database, spans
// collected in memory and log lines captured, exactly as production wires them otherwise.
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { ChannelCredentials } from '@grpc/grpc-js'
import { ALL_SERVICES } from '../../services/registry.ts'
import { createClient } from '../../services/runtime/client.ts'
import { addressVariable, type Config, loadConfig, SERVICE_NAMES, type ServiceName } from '../../services/runtime/config.ts'
import type { Clock } from '../../services/runtime/clock.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { createLogger } from '../../services/runtime/logger.ts'
import { type ClientOf, SERVICE_CLIENTS } from '../../services/runtime/peers.ts'
import { type Mesh, startMesh } from '../../services/runtime/process.ts'
import type { ServiceSpec } from '../../services/runtime/service-host.ts'
import { startTelemetry, type Telemetry } from '../../services/runtime/telemetry.ts'
import { certificateFiles, channelCredentials } from '../../services/runtime/tls.ts'
import { type FreshDatabase, freshDatabase } from './database.ts'

export interface TestMesh {
  readonly mesh: Mesh
  readonly config: Config
  readonly fresh: FreshDatabase
  readonly spans: InMemorySpanExporter
  readonly telemetry: Telemetry
  /** Every log line written by the services, as JSON text. */
  readonly logLines: string[]
  address(name: ServiceName): string
  /** Credentials of a mesh identity (certificate issued by this mesh's dev CA on first use). */
  credentials(identity: Identity): Promise<ChannelCredentials>
  /** A generated client of a service, authenticated as `identity`; closed by stop(). */
  client<Name extends ServiceName>(name: Name, identity: Identity): Promise<ClientOf<Name>>
  stop(): Promise<void>
}

export async function startTestMesh(
  options: {
    services?: readonly ServiceSpec[]
    env?: NodeJS.ProcessEnv
    telemetryEnv?: NodeJS.ProcessEnv
    /** The services' clock (a ManualClock moves time for their rules); the system clock by default. */
    clock?: Clock
  } = {},
): Promise<TestMesh> {
  const fresh = await freshDatabase()
  const env: NodeJS.ProcessEnv = {
    CLOUDPAY_HOME: fresh.home,
    CLOUDPAY_TLS_REFRESH_MS: '200',
    CLOUDPAY_SHUTDOWN_GRACE_MS: '2000',
    ...Object.fromEntries(SERVICE_NAMES.map((name) => [addressVariable(name), '127.0.0.1:0'])),
    ...(fresh.location.databaseUrl ? { DATABASE_URL: fresh.location.databaseUrl } : {}),
    ...options.env,
  }
  const config = loadConfig(env)
  const spans = new InMemorySpanExporter()
  const logLines: string[] = []
  // CLOUDPAY_TEST_LOG=1 also prints the services' log lines (for debugging a failing test).
  const echo = process.env.CLOUDPAY_TEST_LOG === '1'
  const log = createLogger({
    level: 'debug',
    name: 'cloudpay-test',
    destination: {
      write: (line: string) => {
        logLines.push(line)
        if (echo && !line.includes('"level":"debug"')) process.stderr.write(line)
      },
    },
  })
  const telemetry = startTelemetry({
    env: options.telemetryEnv ?? {},
    spanProcessors: [new SimpleSpanProcessor(spans)],
    spanFile: config.traceFile,
    onExportTrouble: (message, error) => log.warn({ error: error?.message }, message),
  })
  const mesh = await startMesh(options.services ?? ALL_SERVICES, { config, telemetry, log, clock: options.clock })
  const clients: { close(): void }[] = []
  const address = (name: ServiceName): string => {
    const running = mesh.services.find((s) => s.name === name)
    if (!running) throw new Error(`${name} is not running in this test mesh`)
    return running.address
  }
  const credentials = async (identity: Identity) => channelCredentials(await certificateFiles(config, identity), config.tlsRefreshMs)
  return {
    mesh,
    config,
    fresh,
    spans,
    telemetry,
    logLines,
    address,
    credentials,
    async client(name, identity) {
      const Client = SERVICE_CLIENTS[name] as unknown as new (address: string, credentials: ChannelCredentials) => ClientOf<typeof name>
      const client = createClient(Client, address(name), await credentials(identity), telemetry.tracer('test-client'))
      clients.push(client)
      return client
    },
    async stop() {
      for (const client of clients) client.close()
      await mesh.stop()
      await telemetry.shutdown()
      await fresh.drop()
    },
  }
}

export const OPERATOR: Identity = { role: 'operator', id: 'test-operator' }
export const TERMINAL: Identity = { role: 'terminal', id: 'phone-1' }
export const INSTANCE: Identity = { role: 'instance', id: 'device-1' }
