// Latency figures and load loops for the benchmarks.
import { performance } from 'node:perf_hooks'

export interface Figures {
  readonly count: number
  readonly errors: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

/** What one load run saw: every latency after the warm-up, and how many operations ran in all. */
export interface Samples {
  readonly latencies: number[]
  readonly errors: number
  readonly durationMs: number
  /** Operations finished from the first to the last (warm-up and failures included): what CPU time divides by. */
  readonly completed: number
}

/**
 * Runs `operation` from `concurrency` workers for `durationMs` (after a short warm-up), then lets
 * the operations in flight finish. An operation counts where it finishes: those finishing inside
 * the window give the latencies and the throughput, whenever they started (a flow slower than the
 * window would otherwise never be counted at high concurrency).
 */
export async function sample(operation: () => Promise<unknown>, concurrency: number, durationMs: number, warmupMs = Math.min(2000, durationMs / 4)): Promise<Samples> {
  const warmupEnd = performance.now() + warmupMs
  const end = warmupEnd + durationMs
  const latencies: number[] = []
  let errors = 0
  let completed = 0
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const start = performance.now()
      const inWindow = (finished: number) => finished > warmupEnd && finished <= end
      try {
        await operation()
        const finished = performance.now()
        if (inWindow(finished)) latencies.push(finished - start)
      } catch {
        if (inWindow(performance.now())) errors++
      }
      completed++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return { latencies, errors, durationMs, completed }
}

/** Figures over one or more runs (interleaved runs of the same operation are merged). */
export function figuresOf(...runs: Samples[]): Figures & { completed: number } {
  const latencies = runs.flatMap((r) => r.latencies).sort((a, b) => a - b)
  const durationMs = runs.reduce((sum, r) => sum + r.durationMs, 0)
  return {
    count: latencies.length,
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    perSecond: (latencies.length / durationMs) * 1000,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    completed: runs.reduce((sum, r) => sum + r.completed, 0),
  }
}

/** Runs `operation` from `concurrency` workers for `durationMs` (after a short warm-up). */
export async function load(operation: () => Promise<unknown>, concurrency: number, durationMs: number, warmupMs?: number): Promise<Figures & { completed: number }> {
  return figuresOf(await sample(operation, concurrency, durationMs, warmupMs))
}

export const round = (value: number, digits = 2): number => Number(value.toFixed(digits))

/** A report row of one measured load: what, the load, its rate (when one is counted), p50, p99, errors, notes. */
export function figuresRow(
  what: string,
  level: string,
  figures: { readonly perSecond?: number; readonly p50Ms: number; readonly p99Ms: number; readonly errors: number },
  notes: string,
  rate?: { readonly unit: string; readonly digits: number },
): string[] {
  const perSecond = rate && figures.perSecond !== undefined ? `${round(figures.perSecond, rate.digits)} ${rate.unit}` : ''
  return [what, level, perSecond, `${round(figures.p50Ms)} ms`, `${round(figures.p99Ms)} ms`, `${figures.errors}`, notes]
}

/** The bench's report table: a header, a rule, then the rows, each column padded to its widest cell. */
export function table(rows: readonly string[][]): string {
  const header = ['what', 'load', 'throughput', 'p50', 'p99', 'errors', 'notes']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ')
  return `${line(header)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`
}
