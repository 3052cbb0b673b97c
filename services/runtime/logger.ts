// JSON logs (pino) with the active trace and span ids, 64-bit values printed as strings, and
// secret-bearing fields redacted wherever they appear.
import { trace } from '@opentelemetry/api'
import { pino, type DestinationStream, type Logger } from 'pino'

export type { Logger }

/** Field names that can hold a secret; their values are never written. */
export const SECRET_FIELDS = [
  'password',
  'payment_password',
  'paymentPassword',
  'payer_account',
  'payerAccount',
  'login_token',
  'loginToken',
  'session_token',
  'sessionToken',
  'token',
] as const

export function createLogger(options: { level: string; name: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: options.name,
      level: options.level,
      base: { service: options.name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: {
        paths: SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
        censor: '[redacted]',
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
          method.apply(this, args.map((arg) => (typeof arg === 'object' && arg !== null ? bigintsToStrings(arg) : arg)) as Parameters<typeof method>)
        },
      },
    },
    options.destination,
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
