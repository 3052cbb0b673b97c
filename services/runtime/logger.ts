// JSON logs (pino; readable lines at a terminal) with the active trace and span ids, 64-bit values printed as strings, and
// secret-bearing fields (secrets.ts, the same list idempotency fingerprints and spans use)
// redacted wherever they appear: at any depth in what is logged, and in child bindings.
import { trace } from '@opentelemetry/api'
import { pino, type DestinationStream, type Logger } from 'pino'
import { createRequire } from 'node:module'
import type Pretty from 'pino-pretty'
import { SECRET_FIELDS, withoutSecrets } from './secrets.ts'

export type { Logger }

/** pino-pretty, loaded only for a person at a terminal (a service in production never needs it). */
const prettyLines = (): typeof Pretty => createRequire(import.meta.url)('pino-pretty') as typeof Pretty

const REDACTED = '[redacted]'

export interface LoggerOptions {
  readonly level: string
  readonly name: string
  readonly destination?: DestinationStream
  /** Human-readable lines (pino-pretty) instead of JSON: for a person at a terminal. */
  readonly pretty?: boolean
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? (options.pretty ? prettyLines()({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }) : undefined)
  return pino(
    {
      level: options.level,
      // Only `name` here: services log through child loggers that bind `service`, once.
      base: { name: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Bindings of child loggers do not pass logMethod; pino's redaction covers those.
      redact: {
        paths: SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
        censor: REDACTED,
      },
      mixin() {
        const span = trace.getActiveSpan()
        if (!span) return {}
        const { traceId, spanId } = span.spanContext()
        return { trace_id: traceId, span_id: spanId }
      },
      hooks: {
        // pino cannot serialize BigInt; int64 fields from the protos are BigInt.
        logMethod(args, method) {
          method.apply(this, args.map((arg) => (typeof arg === 'object' && arg !== null ? bigintsToStrings(withoutSecrets(arg, REDACTED)) : arg)) as Parameters<typeof method>)
        },
      },
    },
    destination,
  )
}

function bigintsToStrings(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Error || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map(bigintsToStrings)
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `<${value.length} bytes>`
  const out: Record<string, unknown> = {}
  for (const [key, inner] of Object.entries(value)) out[key] = bigintsToStrings(inner)
  return out
}
