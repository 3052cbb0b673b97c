// Configuration from the environment, read once by an entry point (main/mesh/cli) and passed down.
import { resolve } from 'node:path'

export const SERVICE_NAMES = [
  'account-management',
  'payment-management',
  'instance-events',
  'payment-platform',
  'app-service',
] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]

export const DEFAULT_PORTS: Readonly<Record<ServiceName, number>> = {
  'account-management': 50051,
  'payment-management': 50052,
  'instance-events': 50053,
  'payment-platform': 50054,
  'app-service': 50055,
}

export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value)
}

/** `account-management` -> `CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR` */
export function addressVariable(name: ServiceName): string {
  return `CLOUDPAY_${name.toUpperCase().replaceAll('-', '_')}_ADDR`
}

export type TlsSource =
  /** The development CA under <home>/certs, created on first use. */
  | { readonly kind: 'dev' }
  /** Production: the operator's own CA, certificate and key files (watched for replacement). */
  | { readonly kind: 'files'; readonly caFile: string; readonly certFile: string; readonly keyFile: string }

export interface Config {
  /** Data directory: dev certificates, embedded database. */
  readonly home: string
  /** PostgreSQL connection string; unset means embedded PGlite under <home>/db. */
  readonly databaseUrl: string | undefined
  readonly tls: TlsSource
  /** How often certificate files are re-read, so replaced files apply without a restart. */
  readonly tlsRefreshMs: number
  /** Listen address of each service, and where peers reach it. */
  readonly addresses: Readonly<Record<ServiceName, string>>
  readonly logLevel: string
  /** How long a shutdown lets in-flight calls finish before cutting them. */
  readonly shutdownGraceMs: number
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const addresses = Object.fromEntries(
    SERVICE_NAMES.map((name) => {
      const value = env[addressVariable(name)] ?? `127.0.0.1:${DEFAULT_PORTS[name]}`
      if (!/^[^\s]+:\d{1,5}$/.test(value)) throw new ConfigError(`${addressVariable(name)} must be host:port, got ${JSON.stringify(value)}`)
      return [name, value]
    }),
  ) as Record<ServiceName, string>
  return Object.freeze({
    home: resolve(env.CLOUDPAY_HOME ?? '.cloudpay'),
    databaseUrl: nonEmpty(env.DATABASE_URL),
    tls: tlsFrom(env),
    tlsRefreshMs: positiveInt(env, 'CLOUDPAY_TLS_REFRESH_MS', 10_000),
    addresses: Object.freeze(addresses),
    logLevel: env.CLOUDPAY_LOG_LEVEL ?? 'info',
    shutdownGraceMs: positiveInt(env, 'CLOUDPAY_SHUTDOWN_GRACE_MS', 10_000),
  })
}

function tlsFrom(env: NodeJS.ProcessEnv): TlsSource {
  const caFile = nonEmpty(env.CLOUDPAY_TLS_CA)
  const certFile = nonEmpty(env.CLOUDPAY_TLS_CERT)
  const keyFile = nonEmpty(env.CLOUDPAY_TLS_KEY)
  if (!caFile && !certFile && !keyFile) return { kind: 'dev' }
  if (!caFile || !certFile || !keyFile) {
    throw new ConfigError('CLOUDPAY_TLS_CA, CLOUDPAY_TLS_CERT and CLOUDPAY_TLS_KEY must be set together')
  }
  return { kind: 'files', caFile: resolve(caFile), certFile: resolve(certFile), keyFile: resolve(keyFile) }
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = nonEmpty(env[name])
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return value
}
