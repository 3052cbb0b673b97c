// Prints stored spans as a dashboard-style waterfall: one row per span in tree order, its
// service, name (indented by depth), start offset, duration, a bar on a shared time axis, status.
import type { StoredSpan } from '../services/runtime/span-file.ts'

const BAR_WIDTH = 40
const ERROR = 2

/** Trace ids matching a trace id, or an order / login / device id carried as an attribute. */
export function findTraceIds(spans: StoredSpan[], key: string): string[] {
  if (/^[0-9a-f]{32}$/.test(key)) return spans.some((s) => s.traceId === key) ? [key] : []
  const ids = new Set<string>()
  for (const span of spans) {
    if (['cloudpay.order_id', 'cloudpay.login_id', 'cloudpay.device_id'].some((attribute) => span.attributes[attribute] === key)) ids.add(span.traceId)
  }
  return [...ids]
}

export function waterfall(spans: StoredSpan[], traceId: string, options: { db?: boolean } = {}): string {
  const all = spans.filter((s) => s.traceId === traceId && (options.db || !s.name.startsWith('db ')))
  if (all.length === 0) return `trace ${traceId}: no spans stored\n`
  const start = Math.min(...all.map((s) => s.startMs))
  const end = Math.max(...all.map((s) => s.startMs + s.durationMs))
  const total = Math.max(end - start, 0.001)
  const byParent = new Map<string | undefined, StoredSpan[]>()
  const ids = new Set(all.map((s) => s.spanId))
  for (const span of all) {
    const parent = span.parentSpanId && ids.has(span.parentSpanId) ? span.parentSpanId : undefined
    byParent.set(parent, [...(byParent.get(parent) ?? []), span])
  }
  const rows: string[] = []
  const visit = (parent: string | undefined, depth: number): void => {
    for (const span of (byParent.get(parent) ?? []).sort((a, b) => a.startMs - b.startMs)) {
      const offset = span.startMs - start
      const from = Math.floor((offset / total) * BAR_WIDTH)
      const width = Math.max(1, Math.round((span.durationMs / total) * BAR_WIDTH))
      const bar = ' '.repeat(Math.min(from, BAR_WIDTH - 1)) + '█'.repeat(Math.min(width, BAR_WIDTH - Math.min(from, BAR_WIDTH - 1)))
      const name = `${'  '.repeat(depth)}${span.name.replace(/^cloudpay\.\w+\.v1\./, '')}`
      const status = span.status.code === ERROR ? `ERROR ${span.status.message ?? ''}`.trim() : 'ok'
      rows.push(
        `${span.service.replace(/^cloudpay-/, '').padEnd(19)} ${name.slice(0, 58).padEnd(58)} ${`+${offset.toFixed(1)}ms`.padStart(10)} ${`${span.durationMs.toFixed(1)}ms`.padStart(9)} |${bar.padEnd(BAR_WIDTH)}| ${status}`,
      )
      visit(span.spanId, depth + 1)
    }
  }
  visit(undefined, 0)
  const services = new Set(all.map((s) => s.service))
  const header = `trace ${traceId} · ${all.length} spans · ${services.size} services · ${total.toFixed(1)} ms`
  const columns = `${'service'.padEnd(19)} ${'span'.padEnd(58)} ${'start'.padStart(10)} ${'duration'.padStart(9)} |${'timeline'.padEnd(BAR_WIDTH)}| status`
  return [header, columns, ...rows, ''].join('\n')
}
