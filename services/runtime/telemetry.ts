// OpenTelemetry for every service: one tracer provider per service (so each shows as its own
// service in Jaeger/Tempo even when all five share a process), W3C trace context carried in gRPC
// metadata, OTLP export configured by the standard OTEL_* variables.
import { context, createContextKey, propagation, type Tracer } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { CompositePropagator, ExportResultCode, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { createRequire } from 'node:module'
import type * as OtlpGrpc from '@opentelemetry/exporter-trace-otlp-grpc'
import type * as OtlpJson from '@opentelemetry/exporter-trace-otlp-http'
import type * as OtlpProto from '@opentelemetry/exporter-trace-otlp-proto'
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { AlwaysOffSampler, BatchSpanProcessor, ConsoleSpanExporter, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import { FileSpanExporter } from './span-file.ts'
import { BaggageAttributesProcessor } from './trace-context.ts'

export interface TelemetryOptions {
  readonly env?: NodeJS.ProcessEnv
  /** Told once when span export starts failing and once when it recovers (default: stderr). */
  readonly onExportTrouble?: (message: string, error?: Error) => void
  /** Extra processors on every provider (tests: a SimpleSpanProcessor over an InMemorySpanExporter). */
  readonly spanProcessors?: readonly SpanProcessor[]
  /** Also keep spans in this local file (bounded), for `cloudpay trace` without a backend. */
  readonly spanFile?: string
}

/** The tracer of the service whose work is running (handlers and outbox deliveries set it). */
export const SERVICE_TRACER = createContextKey('cloudpay.service-tracer')

export interface Telemetry {
  /** The tracer of one service (`account-management`, ...); its spans carry service.name cloudpay-<name>. */
  tracer(service: string): Tracer
  forceFlush(): Promise<void>
  shutdown(): Promise<void>
}

let globalsInstalled = false

function installGlobals(): void {
  if (globalsInstalled) return
  globalsInstalled = true
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }))
}

export function startTelemetry(options: TelemetryOptions = {}): Telemetry {
  const env = options.env ?? process.env
  installGlobals()
  const detected = detectResources({ detectors: [envDetector] })
  const fileExporter = options.spanFile ? new FileSpanExporter(options.spanFile) : undefined
  const providers = new Map<string, NodeTracerProvider>()
  const trouble = exportTrouble(options.onExportTrouble)
  const provider = (service: string): NodeTracerProvider => {
    let existing = providers.get(service)
    if (!existing) {
      const processors: SpanProcessor[] = [new BaggageAttributesProcessor(), ...(options.spanProcessors ?? [])]
      const exporter = exporterFromEnv(env)
      if (exporter) processors.push(new BatchSpanProcessor(new WatchedExporter(exporter, trouble)))
      if (fileExporter) processors.push(new BatchSpanProcessor(fileExporter, { scheduledDelayMillis: 200 }))
      // With nowhere for spans to go, none is recorded: trace and span ids still flow through
      // every call, hand-off and log line (one trace id per flow), at no cost for what nobody reads.
      const consumed = exporter !== undefined || fileExporter !== undefined || (options.spanProcessors?.length ?? 0) > 0
      existing = new NodeTracerProvider({
        ...(consumed ? {} : { sampler: new AlwaysOffSampler() }),
        resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: `cloudpay-${service}`, [ATTR_SERVICE_VERSION]: '0.1.0', 'service.namespace': 'cloudpay' }).merge(
          // OTEL_RESOURCE_ATTRIBUTES adds to (never renames) the per-service name.
          resourceWithoutServiceName(detected),
        ),
        spanProcessors: processors,
      })
      providers.set(service, existing)
    }
    return existing
  }
  return {
    tracer: (service) => provider(service).getTracer('cloudpay', '0.1.0'),
    // A backend that is down costs its spans, never a flow: flushing and shutting down do not fail.
    forceFlush: async () => {
      await Promise.allSettled([...providers.values()].map((p) => p.forceFlush()))
    },
    shutdown: async () => {
      await Promise.allSettled([...providers.values()].map((p) => p.shutdown()))
      providers.clear()
    },
  }
}

function resourceWithoutServiceName(resource: ReturnType<typeof detectResources>) {
  const attributes = { ...resource.attributes }
  delete attributes[ATTR_SERVICE_NAME]
  return resourceFromAttributes(attributes)
}

/**
 * OTLP export only when asked for: OTEL_TRACES_EXPORTER=otlp|console, or an OTLP endpoint set.
 * The exporters read their own OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout).
 */
export function exporterFromEnv(env: NodeJS.ProcessEnv): SpanExporter | undefined {
  const chosen = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (chosen.includes('none')) return undefined
  if (chosen.includes('console')) return new ConsoleSpanExporter()
  const endpointSet = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  if (!chosen.includes('otlp') && !endpointSet) return undefined
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf'
  // The URL from the given environment (the exporters would read process.env only); headers and
  // timeouts they read themselves.
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/$/, '')
  const signalUrl = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  const config = (path: string) => (signalUrl ? { url: signalUrl } : base ? { url: `${base}${path}` } : {})
  // Only the exporter asked for is loaded: each brings its own transport and encoding (memory in every process).
  const load = createRequire(import.meta.url)
  switch (protocol) {
    case 'grpc':
      return new (load('@opentelemetry/exporter-trace-otlp-grpc') as typeof OtlpGrpc).OTLPTraceExporter(config(''))
    case 'http/json':
      return new (load('@opentelemetry/exporter-trace-otlp-http') as typeof OtlpJson).OTLPTraceExporter(config('/v1/traces'))
    case 'http/protobuf':
      return new (load('@opentelemetry/exporter-trace-otlp-proto') as typeof OtlpProto).OTLPTraceExporter(config('/v1/traces'))
    default:
      throw new Error(`OTEL_EXPORTER_OTLP_PROTOCOL must be grpc, http/protobuf or http/json, got ${JSON.stringify(protocol)}`)
  }
}

/** One warning when export starts failing and one when it works again, shared by all providers. */
function exportTrouble(report: TelemetryOptions['onExportTrouble'] = (message, error) => process.stderr.write(`cloudpay telemetry: ${message}${error ? `: ${error.message}` : ''}\n`)) {
  let failing = false
  return (ok: boolean, error?: Error): void => {
    if (ok === !failing) return
    failing = !ok
    report(ok ? 'span export works again' : 'span export is failing; spans are dropped until the backend answers', error)
  }
}

/** An exporter whose failures are reported (once, and on recovery) instead of going unnoticed. */
class WatchedExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly trouble: (ok: boolean, error?: Error) => void,
  ) {}

  export(spans: Parameters<SpanExporter['export']>[0], done: Parameters<SpanExporter['export']>[1]): void {
    this.inner.export(spans, (result) => {
      this.trouble(result.code === ExportResultCode.SUCCESS, result.error)
      done(result)
    })
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown().catch(() => undefined)
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.().catch(() => undefined) ?? Promise.resolve()
  }
}
