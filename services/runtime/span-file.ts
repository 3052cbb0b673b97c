// Traces without a backend: finished spans are appended as JSON lines to a local file, rotated
// at a size limit (the current file and one older), which `cloudpay trace` reads back.
import { hrTimeToMilliseconds } from '@opentelemetry/core'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs'
import { dirname } from 'node:path'

export interface StoredSpan {
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  name: string
  kind: number
  service: string
  startMs: number
  durationMs: number
  status: { code: number; message?: string }
  attributes: Record<string, unknown>
  events: { name: string; timeMs: number; attributes: Record<string, unknown> }[]
}

const ExportSuccess = { code: 0 } as const

export class FileSpanExporter implements SpanExporter {
  constructor(
    private readonly file: string,
    private readonly maxBytes = 8 * 1024 * 1024,
  ) {
    mkdirSync(dirname(file), { recursive: true })
  }

  export(spans: ReadableSpan[], done: (result: { code: 0 | 1 }) => void): void {
    try {
      const lines = spans.map((span) => JSON.stringify(toStored(span), (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value))).join('\n') + '\n'
      if (existsSync(this.file) && statSync(this.file).size + lines.length > this.maxBytes) renameSync(this.file, `${this.file}.1`)
      appendFileSync(this.file, lines)
      done(ExportSuccess)
    } catch {
      done({ code: 1 })
    }
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}

function toStored(span: ReadableSpan): StoredSpan {
  const startMs = hrTimeToMilliseconds(span.startTime)
  return {
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    parentSpanId: span.parentSpanContext?.spanId,
    name: span.name,
    kind: span.kind,
    service: String(span.resource.attributes['service.name'] ?? '?'),
    startMs,
    durationMs: hrTimeToMilliseconds(span.duration),
    status: { code: span.status.code, ...(span.status.message ? { message: span.status.message } : {}) },
    attributes: { ...span.attributes },
    events: span.events.map((event) => ({ name: event.name, timeMs: hrTimeToMilliseconds(event.time), attributes: { ...(event.attributes ?? {}) } })),
  }
}

/** Every stored span, oldest file first. */
export function readStoredSpans(file: string): StoredSpan[] {
  const spans: StoredSpan[] = []
  for (const path of [`${file}.1`, file]) {
    if (!existsSync(path)) continue
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue
      try {
        spans.push(JSON.parse(line) as StoredSpan)
      } catch {
        // a line cut by a crash mid-write
      }
    }
  }
  return spans
}
