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

/** Runs `operation` from `concurrency` workers for `durationMs` (after a short warm-up). */
export async function load(operation: () => Promise<unknown>, concurrency: number, durationMs: number, warmupMs = Math.min(500, durationMs / 4)): Promise<Figures> {
  const warmupEnd = performance.now() + warmupMs
  const end = warmupEnd + durationMs
  const latencies: number[] = []
  let errors = 0
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const start = performance.now()
      try {
        await operation()
        if (start >= warmupEnd) latencies.push(performance.now() - start)
      } catch {
        if (start >= warmupEnd) errors++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  latencies.sort((a, b) => a - b)
  return { count: latencies.length, errors, perSecond: (latencies.length / durationMs) * 1000, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) }
}

export const round = (value: number, digits = 2): number => Number(value.toFixed(digits))
