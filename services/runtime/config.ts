// Configuration from the environment, read once by an entry point (main/mesh/cli) and passed down.
import { join, resolve } from 'node:path'
import { MAX_STREAMS_PER_CALLER } from './limits.ts'
import { TEMPLATES_OFF } from './pglite-template.ts'

export const SERVICE_NAMES = ['account-management', 'payment-management', 'instance-events', 'payment-platform', 'app-service', 'push-relay'] as const
export type ServiceName = (typeof SERVICE_NAMES)[number]

/**
 * Below every kernel's ephemeral range (Linux 32768-60999, Windows and macOS 49152-65535): an
 * outgoing connection takes its local port from that range and, once closed, holds it in
 * TIME_WAIT for 60 s, refusing a listener there. gRPC's customary 50051-50056 lie inside it, and a
 * test run or a browser left one taken often enough to fail `npm start` (EADDRINUSE).
 */
export const DEFAULT_PORTS: Readonly<Record<ServiceName, number>> = {
  'account-management': 15051,
  'payment-management': 15052,
  'instance-events': 15053,
  'payment-platform': 15054,
  'app-service': 15055,
  'push-relay': 15056,
}

export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value)
}

/** `account-management` -> `CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR` (where peers reach it) */
export function addressVariable(name: ServiceName): string {
  return serviceVariable(name, 'ADDR')
}

/** `account-management` -> `CLOUDPAY_ACCOUNT_MANAGEMENT_LISTEN` (where its own replica binds) */
export function listenVariable(name: ServiceName): string {
  return serviceVariable(name, 'LISTEN')
}

/** `account-management` -> `CLOUDPAY_ACCOUNT_MANAGEMENT_HEALTH_LISTEN` (plaintext health-only port for probes) */
export function healthListenVariable(name: ServiceName): string {
  return serviceVariable(name, 'HEALTH_LISTEN')
}

function serviceVariable(name: ServiceName, suffix: string): string {
  return `CLOUDPAY_${name.toUpperCase().replaceAll('-', '_')}_${suffix}`
}

/** A gRPC target naming one address or every replica: host:port, dns:///host:port, ipv4:a:p,b:p, ipv6:[a]:p,… */
export function isPlainAddress(target: string): boolean {
  return validHostPort(target)
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
  /** Where empty embedded clusters are kept to copy (`off`: initdb for each); unset: node_modules/.cache/cloudpay. */
  readonly pgliteTemplates: string | undefined
  readonly tls: TlsSource
  /** How often certificate files are re-read, so replaced files apply without a restart. */
  readonly tlsRefreshMs: number
  /**
   * Where peers reach each service: a gRPC target, one address or a name resolving to every
   * replica (dns:///account-management:15051, or a static list ipv4:127.0.0.1:1,127.0.0.1:2).
   */
  readonly addresses: Readonly<Record<ServiceName, string>>
  /**
   * Where this process's replica of each service binds (CLOUDPAY_<SVC>_LISTEN); when unset, its
   * address, which must then be a plain host:port (one machine, no separate advertise address).
   */
  readonly listen: Readonly<Record<ServiceName, string | undefined>>
  /** A plaintext port serving only grpc.health.v1 Check, for Kubernetes' gRPC probes; undefined: none. */
  readonly healthListen: Readonly<Record<ServiceName, string | undefined>>
  /**
   * On shutdown, how long health says NOT_SERVING while the server still accepts calls, so
   * balancers and readiness probes move traffic away before connections are refused.
   */
  readonly drainDelayMs: number
  readonly database: DatabaseSettings
  readonly logLevel: string
  /** json, pretty, or auto: pretty when stdout is a terminal. */
  readonly logFormat: 'json' | 'pretty' | 'auto'
  /** How long a shutdown lets in-flight calls finish before cutting them. */
  readonly shutdownGraceMs: number
  readonly login: LoginSettings
  readonly events: EventSettings
  readonly payment: PaymentSettings
  readonly retention: RetentionSettings
  readonly terminals: TerminalSettings
  /** Base64 of 32 bytes sealing account numbers at rest; unset means a development key under <home>/keys. */
  readonly dataKey: string | undefined
  /** Where spans are kept locally for `cloudpay trace`; undefined when switched off. */
  readonly traceFile: string | undefined
}

/** PostgreSQL pool and timeouts (ignored by the embedded PGlite, a single connection). */
export interface DatabaseSettings {
  /** Connections per process (max_connections must cover processes x (poolSize + 1 LISTEN)). */
  readonly poolSize: number
  /** Giving up on opening a connection (the call fails UNAVAILABLE and is retried). */
  readonly connectTimeoutMs: number
  /** PostgreSQL statement_timeout: no statement runs longer (a call's deadline is 10 s). */
  readonly statementTimeoutMs: number
  /** PostgreSQL idle_in_transaction_session_timeout: a transaction left open is ended by the server. */
  readonly idleInTransactionTimeoutMs: number
  /** Statements each connection keeps prepared (prepared-statements.ts); 0 for none (an old PgBouncer). */
  readonly preparedStatements: number
}

/** README "Production" has the arithmetic: max_connections >= processes x (poolSize + 1). */
export const DEFAULT_DATABASE_SETTINGS: DatabaseSettings = Object.freeze({
  poolSize: 10,
  connectTimeoutMs: 5_000,
  statementTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 60_000,
  preparedStatements: 128,
})

export interface PaymentSettings {
  /** Platform ids this payment-platform process serves. */
  readonly platformIds: readonly string[]
  /** How long a submitted order may stay unpaid. */
  readonly orderTtlMs: number
  /** How long a prepay transaction waits for the payer. */
  readonly prepayTtlMs: number
  /** Wrong payment passwords before a payer account locks, and the lock's length. */
  readonly maxPasswordFailures: number
  readonly passwordLockMs: number
  /** Outbox deliveries: first retry delay (doubling, with random jitter) and its cap. */
  readonly retryBaseMs: number
  readonly retryMaxMs: number
  /**
   * How long a replica holds a delivery it is attempting before another replica may attempt it
   * (what a replica killed mid-attempt delays the delivery by); longer than a call's deadline.
   */
  readonly outboxLeaseMs: number
  /** Attempts after which a delivery that never succeeded is dead-lettered (stops, logged, counted). */
  readonly outboxMaxAttempts: number
  /** A platform's payment-result signing key is replaced when older than this. */
  readonly resultKeyRotationMs: number
  /** A platform's sealing key (HPKE, for relayed credentials) is replaced when older than this... */
  readonly sealingKeyRotationMs: number
  /** ...and a replaced one is still accepted this long after (blobs sealed just before the rotation). */
  readonly sealingKeyGraceMs: number
  /** The largest opening balance an operator may give a new payer account (minor units). */
  readonly maxOpeningBalanceMinor: bigint
  /** Offline payment codes (docs/design.md): payee keys, credentials, redemption checks. */
  readonly offline: OfflineSettings
}

export interface OfflineSettings {
  /** A payee key is meant to be replaced after this... */
  readonly payeeKeyRotationMs: number
  /** ...and codes sealed to it still redeem this long after (then PAYEE_KEY_EXPIRED). */
  readonly payeeKeyGraceMs: number
  /** The longest window an offline credential may have. */
  readonly credentialMaxTtlMs: number
  /** The largest allowance one credential may reserve (minor units). */
  readonly allowanceMaxMinor: bigint
  /** Counters this far below the highest redeemed may still arrive (out of order). */
  readonly counterWindow: number
  /** How far ahead of the platform's clock a code's generate time may be. */
  readonly clockSkewMs: number
  /** Ended credentials (and their redemptions) and expired payee keys are purged this long after. */
  readonly retentionMs: number
}

/**
 * How long each kind of finished record is kept before the services' background purge deletes
 * it (in bounded batches). Work still in progress is never purged, however old: an unanswered
 * request id, an undelivered outbox row, a live login, session or channel.
 */
export interface RetentionSettings {
  /** How often each replica of each service runs a purge pass. */
  readonly intervalMs: number
  /** Answered request ids (every service's idempotency_keys), from their first call. */
  readonly idempotencyMs: number
  /** Delivered outbox rows, from their delivery. */
  readonly outboxMs: number
  /** Logins and login tokens, from their expiry (whatever their state: redeemed, used, ended). */
  readonly loginMs: number
  /** Application sessions, from their expiry. */
  readonly sessionMs: number
  /** Closed channels, from their closing. */
  readonly channelMs: number
  /** AppService's ended-assignment tombstones, from the end; at least the longest token or session TTL. */
  readonly tombstoneMs: number
}

/** How terminals enrolled in an account claim pushed orders. */
export interface TerminalSettings {
  /** The most terminals one cloud account may have enrolled. */
  readonly maxPerAccount: number
  /** The gestures ClaimOrder accepts. */
  readonly claimGestures: readonly ClaimGesture[]
}

/** The most CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT may be (every list of an account's terminals fits in one message). */
export const MOST_TERMINALS_PER_ACCOUNT = 100

export const CLAIM_GESTURES = ['tap', 'slide', 'lift'] as const
export type ClaimGesture = (typeof CLAIM_GESTURES)[number]

export interface LoginSettings {
  /** How long a started login waits for the person. */
  readonly loginTtlMs: number
  /** How long a redeemed login token stays valid (it is single-use). */
  readonly tokenTtlMs: number
  /** How long an application session lasts. */
  readonly sessionTtlMs: number
  /** Failed verifications (per account, and per device) before a lock. */
  readonly maxFailures: number
  /** How long a lock lasts; failures older than this are forgotten. */
  readonly lockMs: number
  /**
   * How long ReleaseInstance (and AssignInstance of an assigned device) waits for the other
   * services to acknowledge that the ended assignment's sessions, channels and orders are gone.
   */
  readonly releaseWaitMs: number
}

export interface EventSettings {
  /** How long events are kept for subscribers to catch up. */
  readonly retentionMs: number
  /** A subscriber whose stream stays unwritable this long is cut off (it resumes from its sequence). */
  readonly stallMs: number
  /** Safety net: subscribers re-check the store this often even without a notification. */
  readonly pollMs: number
  /** Streams (Notify, FollowTerminal) one caller may hold on one replica at once (stream-quota.ts). */
  readonly maxStreamsPerCaller: number
}

export class ConfigError extends Error {}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const addresses = perService((name) => target(env, addressVariable(name), `127.0.0.1:${DEFAULT_PORTS[name]}`))
  const listen = perService((name) => optionalAddress(env, listenVariable(name)))
  const healthListen = perService((name) => optionalAddress(env, healthListenVariable(name)))
  return Object.freeze({
    home: resolve(env.CLOUDPAY_HOME ?? '.cloudpay'),
    databaseUrl: nonEmpty(env.DATABASE_URL),
    pgliteTemplates: pgliteTemplatesFrom(nonEmpty(env.CLOUDPAY_PGLITE_TEMPLATES)),
    tls: tlsFrom(env),
    tlsRefreshMs: positiveInt(env, 'CLOUDPAY_TLS_REFRESH_MS', 10_000),
    addresses: Object.freeze(addresses),
    listen: Object.freeze(listen),
    healthListen: Object.freeze(healthListen),
    drainDelayMs: nonNegativeInt(env, 'CLOUDPAY_DRAIN_DELAY_MS', 0),
    database: Object.freeze({
      poolSize: boundedInt(env, 'CLOUDPAY_DB_POOL_SIZE', DEFAULT_DATABASE_SETTINGS.poolSize, 1_000),
      connectTimeoutMs: positiveInt(env, 'CLOUDPAY_DB_CONNECT_TIMEOUT_MS', DEFAULT_DATABASE_SETTINGS.connectTimeoutMs),
      statementTimeoutMs: positiveInt(env, 'CLOUDPAY_DB_STATEMENT_TIMEOUT_MS', DEFAULT_DATABASE_SETTINGS.statementTimeoutMs),
      idleInTransactionTimeoutMs: positiveInt(env, 'CLOUDPAY_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS', DEFAULT_DATABASE_SETTINGS.idleInTransactionTimeoutMs),
      preparedStatements: boundedNonNegativeInt(env, 'CLOUDPAY_DB_PREPARED_STATEMENTS', DEFAULT_DATABASE_SETTINGS.preparedStatements, 10_000),
    }),
    logLevel: oneOf(env, 'CLOUDPAY_LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: oneOf(env, 'CLOUDPAY_LOG_FORMAT', ['json', 'pretty', 'auto'] as const, 'auto'),
    shutdownGraceMs: positiveInt(env, 'CLOUDPAY_SHUTDOWN_GRACE_MS', 10_000),
    login: Object.freeze({
      loginTtlMs: positiveInt(env, 'CLOUDPAY_LOGIN_TTL_MS', 5 * 60_000),
      tokenTtlMs: positiveInt(env, 'CLOUDPAY_LOGIN_TOKEN_TTL_MS', 2 * 60_000),
      sessionTtlMs: positiveInt(env, 'CLOUDPAY_SESSION_TTL_MS', 12 * 3_600_000),
      maxFailures: positiveInt(env, 'CLOUDPAY_LOGIN_MAX_FAILURES', 5),
      lockMs: positiveInt(env, 'CLOUDPAY_LOGIN_LOCK_MS', 15 * 60_000),
      releaseWaitMs: positiveInt(env, 'CLOUDPAY_RELEASE_WAIT_MS', 5_000),
    }),
    payment: Object.freeze({
      platformIds: Object.freeze(platformIds(env)),
      orderTtlMs: positiveInt(env, 'CLOUDPAY_ORDER_TTL_MS', 15 * 60_000),
      prepayTtlMs: positiveInt(env, 'CLOUDPAY_PREPAY_TTL_MS', 15 * 60_000),
      maxPasswordFailures: positiveInt(env, 'CLOUDPAY_PAYMENT_MAX_FAILURES', 3),
      passwordLockMs: positiveInt(env, 'CLOUDPAY_PAYMENT_LOCK_MS', 15 * 60_000),
      retryBaseMs: positiveInt(env, 'CLOUDPAY_RETRY_BASE_MS', 200),
      retryMaxMs: positiveInt(env, 'CLOUDPAY_RETRY_MAX_MS', 30_000),
      outboxLeaseMs: positiveInt(env, 'CLOUDPAY_OUTBOX_LEASE_MS', 30_000),
      outboxMaxAttempts: positiveInt(env, 'CLOUDPAY_OUTBOX_MAX_ATTEMPTS', 1_000),
      resultKeyRotationMs: positiveInt(env, 'CLOUDPAY_RESULT_KEY_ROTATION_MS', 30 * 24 * 3_600_000),
      sealingKeyRotationMs: positiveInt(env, 'CLOUDPAY_SEALING_KEY_ROTATION_MS', 24 * 3_600_000),
      sealingKeyGraceMs: positiveInt(env, 'CLOUDPAY_SEALING_KEY_GRACE_MS', 3_600_000),
      maxOpeningBalanceMinor: BigInt(positiveInt(env, 'CLOUDPAY_OPENING_BALANCE_MAX_MINOR', 1_000_000)),
      offline: Object.freeze({
        payeeKeyRotationMs: positiveInt(env, 'CLOUDPAY_PAYEE_KEY_ROTATION_MS', 30 * 24 * 3_600_000),
        payeeKeyGraceMs: positiveInt(env, 'CLOUDPAY_PAYEE_KEY_GRACE_MS', 7 * 24 * 3_600_000),
        credentialMaxTtlMs: positiveInt(env, 'CLOUDPAY_OFFLINE_CREDENTIAL_MAX_TTL_MS', 7 * 24 * 3_600_000),
        allowanceMaxMinor: BigInt(positiveInt(env, 'CLOUDPAY_OFFLINE_ALLOWANCE_MAX_MINOR', 50_000)),
        counterWindow: boundedInt(env, 'CLOUDPAY_OFFLINE_COUNTER_WINDOW', 32, 10_000),
        clockSkewMs: positiveInt(env, 'CLOUDPAY_OFFLINE_CLOCK_SKEW_MS', 5 * 60_000),
        retentionMs: positiveInt(env, 'CLOUDPAY_OFFLINE_RETENTION_MS', 30 * 24 * 3_600_000),
      }),
    }),
    retention: retentionFrom(env),
    terminals: Object.freeze({
      maxPerAccount: boundedInt(env, 'CLOUDPAY_MAX_TERMINALS_PER_ACCOUNT', 10, MOST_TERMINALS_PER_ACCOUNT),
      claimGestures: Object.freeze(claimGestures(env)),
    }),
    dataKey: nonEmpty(env.CLOUDPAY_DATA_KEY),
    traceFile: env.CLOUDPAY_TRACE_FILE === 'off' ? undefined : resolve(env.CLOUDPAY_TRACE_FILE ?? join(env.CLOUDPAY_HOME ?? '.cloudpay', 'traces', 'spans.jsonl')),
    events: Object.freeze({
      retentionMs: positiveInt(env, 'CLOUDPAY_EVENT_RETENTION_MS', 7 * 24 * 3_600_000),
      stallMs: positiveInt(env, 'CLOUDPAY_SUBSCRIBER_STALL_MS', 30_000),
      pollMs: positiveInt(env, 'CLOUDPAY_SUBSCRIBER_POLL_MS', 5_000),
      maxStreamsPerCaller: positiveInt(env, 'CLOUDPAY_MAX_STREAMS_PER_CALLER', MAX_STREAMS_PER_CALLER),
    }),
  })
}

const HOUR_MS = 3_600_000

function retentionFrom(env: NodeJS.ProcessEnv): RetentionSettings {
  const tombstoneMs = positiveInt(env, 'CLOUDPAY_TOMBSTONE_RETENTION_MS', 7 * 24 * HOUR_MS)
  // A tombstone must outlive every token and session that could still be presented for its assignment.
  const longestGrant = Math.max(positiveInt(env, 'CLOUDPAY_LOGIN_TOKEN_TTL_MS', 2 * 60_000), positiveInt(env, 'CLOUDPAY_SESSION_TTL_MS', 12 * HOUR_MS))
  if (tombstoneMs < longestGrant) {
    throw new ConfigError(`CLOUDPAY_TOMBSTONE_RETENTION_MS must be at least the longest login token or session TTL (${longestGrant}), got ${tombstoneMs}`)
  }
  return Object.freeze({
    intervalMs: positiveInt(env, 'CLOUDPAY_RETENTION_INTERVAL_MS', 60_000),
    // Stripe keeps idempotency keys for 24 hours.
    idempotencyMs: positiveInt(env, 'CLOUDPAY_IDEMPOTENCY_RETENTION_MS', 24 * HOUR_MS),
    outboxMs: positiveInt(env, 'CLOUDPAY_OUTBOX_RETENTION_MS', 24 * HOUR_MS),
    loginMs: positiveInt(env, 'CLOUDPAY_LOGIN_RETENTION_MS', 24 * HOUR_MS),
    sessionMs: positiveInt(env, 'CLOUDPAY_SESSION_RETENTION_MS', 24 * HOUR_MS),
    channelMs: positiveInt(env, 'CLOUDPAY_CHANNEL_RETENTION_MS', 7 * 24 * HOUR_MS),
    tombstoneMs,
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

function perService<T>(value: (name: ServiceName) => T): Record<ServiceName, T> {
  return Object.fromEntries(SERVICE_NAMES.map((name) => [name, value(name)])) as Record<ServiceName, T>
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/
const IP_LIST = /^(ipv4|ipv6):(.+)$/

function validHostPort(value: string): boolean {
  const match = HOST_PORT.exec(value)
  return match !== null && Number(match[2]) <= 65535
}

/** host:port with a port of 0-65535 (0: any free port, for tests); undefined when unset. */
function optionalAddress(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = nonEmpty(env[name])
  if (value !== undefined && !validHostPort(value)) throw new ConfigError(`${name} must be host:port with a port of 0-65535, got ${quote(value)}`)
  return value
}

/**
 * A peer target grpc-js resolves: host:port, dns:///host:port (every address the name resolves
 * to, re-resolved as replicas come and go), or a static list ipv4:h:p,h:p / ipv6:[h]:p,[h]:p.
 */
function target(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const value = nonEmpty(env[name]) ?? fallback
  const dns = /^dns:\/\/\/(.+)$/.exec(value)
  const list = IP_LIST.exec(value)
  const valid = dns ? validHostPort(dns[1]!) : list ? list[2]!.split(',').every(validHostPort) : validHostPort(value)
  if (!valid) throw new ConfigError(`${name} must be host:port, dns:///host:port or ipv4:host:port,host:port (ports 0-65535), got ${quote(value)}`)
  return value
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const raw = nonEmpty(env[name])
  if (raw === undefined) return fallback
  if (!(allowed as readonly string[]).includes(raw)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}, got ${quote(raw)}`)
  return raw as T
}

function platformIds(env: NodeJS.ProcessEnv): string[] {
  const ids = (env.CLOUDPAY_PLATFORM_IDS ?? 'alphapay,betapay')
    .split(',')
    .map((id) => id.trim())
    .filter(Boolean)
  if (ids.length === 0 || ids.some((id) => !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(id))) {
    throw new ConfigError(`CLOUDPAY_PLATFORM_IDS must be a comma-separated list of platform ids ([A-Za-z0-9._-], up to 64 characters each), got ${quote(env.CLOUDPAY_PLATFORM_IDS ?? '')}`)
  }
  return ids
}

function claimGestures(env: NodeJS.ProcessEnv): ClaimGesture[] {
  const raw = nonEmpty(env.CLOUDPAY_CLAIM_GESTURES)
  if (raw === undefined) return [...CLAIM_GESTURES]
  const gestures = raw.split(',').map((g) => g.trim().toLowerCase())
  if (gestures.some((g) => !(CLAIM_GESTURES as readonly string[]).includes(g))) {
    throw new ConfigError(`CLOUDPAY_CLAIM_GESTURES must be a comma-separated list of ${CLAIM_GESTURES.join(', ')}, got ${quote(raw)}`)
  }
  return [...new Set(gestures as ClaimGesture[])]
}

/** A positive integer up to `max`. */
function boundedInt(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const value = positiveInt(env, name, fallback)
  if (value > max) throw new ConfigError(`${name} must be at most ${max}, got ${quote(String(value))}`)
  return value
}

/** A value for an error message: JSON-quoted and cut short, whatever was set. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
}

function pgliteTemplatesFrom(value: string | undefined): string | undefined {
  return value === undefined || value === TEMPLATES_OFF ? value : resolve(value)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value
}

function boundedNonNegativeInt(env: NodeJS.ProcessEnv, name: string, fallback: number, max: number): number {
  const value = nonNegativeInt(env, name, fallback)
  if (value > max) throw new ConfigError(`${name} must be at most ${max}, got ${quote(String(value))}`)
  return value
}

function nonNegativeInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = nonEmpty(env[name])
  if (raw === undefined) return fallback
  if (raw.trim() === '0') return 0
  return positiveInt(env, name, fallback, 'a non-negative integer')
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number, rule = 'a positive integer'): number {
  const raw = nonEmpty(env[name])
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value <= 0) throw new ConfigError(`${name} must be ${rule}, got ${quote(raw)}`)
  return value
}
