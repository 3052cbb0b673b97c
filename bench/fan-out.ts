// A fan-out measurement: N streams opened by a subscriber process (subscriber-process.ts), then
// `rounds` publishes after one for warm-up, each timed until every stream has it. The server runs in this process, so
// the memory the open streams add here is the server's side alone.
import { fork } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import type { SubscriberCommand, SubscriberReport } from './subscriber-process.ts'
import { percentile } from './stats.ts'

export interface FanOutResult {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  /** Live heap and buffers the open streams added to the server's process, per stream. */
  readonly serverBytesPerStream: number
  /** Each round's time, in publish order. */
  readonly roundsMs: readonly number[]
  /** CPU the subscriber process spent receiving each round. */
  readonly clientCpuMs: readonly number[]
}

export interface FanOutPlan {
  readonly open: Extract<SubscriberCommand, { open: unknown }>['open']
  /** Resolves once the server holds all N streams. */
  readonly ready: () => Promise<void>
  /** The subject the round's message carries (the subscribers look for it). */
  readonly subjectOf: (round: number) => string
  readonly publish: (round: number) => Promise<void> | void
  readonly rounds: number
}

const ROUND_TIMEOUT_MS = 30_000

/**
 * Resolves once `holds()` is true (polled every 20 ms); a fan-out whose streams never all open fails
 * the run with what it saw instead of waiting for ever.
 */
export async function until(holds: () => boolean, what: () => string, timeoutMs = 120_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!holds()) {
    if (performance.now() > deadline) throw new Error(`fan-out: not ready after ${timeoutMs} ms: ${what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Live memory (heap and buffers) after a full collection. */
export function liveMemory(): number {
  global.gc?.()
  global.gc?.()
  const { heapUsed, external } = process.memoryUsage()
  return heapUsed + external
}

export async function fanOut(plan: FanOutPlan): Promise<FanOutResult> {
  const child = fork(new URL('./subscriber-process.ts', import.meta.url).pathname, [], { execArgv: ['--import', 'tsx', ...(process.env.CLOUDPAY_BENCH_SUBSCRIBER_ARGS ?? '').split(' ').filter(Boolean)], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const waiting: { accept: (r: SubscriberReport) => boolean; resolve: (r: SubscriberReport) => void }[] = []
  child.on('message', (report: SubscriberReport) => {
    const index = waiting.findIndex((w) => w.accept(report))
    if (index >= 0) waiting.splice(index, 1)[0]!.resolve(report)
  })
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`subscriber process exited (${code})`))))
  exited.catch(() => undefined)
  const expect = <K extends string>(key: K, timeoutMs = 120_000): Promise<Extract<SubscriberReport, Record<K, unknown>> | undefined> =>
    Promise.race([
      new Promise<Extract<SubscriberReport, Record<K, unknown>>>((resolve) =>
        waiting.push({ accept: (r) => key in r, resolve: resolve as (r: SubscriberReport) => void }),
      ),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs).unref()),
      exited,
    ])
  const command = (c: SubscriberCommand): void => void child.send(c)

  try {
    const before = liveMemory()
    command({ open: plan.open })
    await expect('opened')
    await plan.ready()
    const serverBytesPerStream = (liveMemory() - before) / plan.open.n
    let errors = 0
    const times: number[] = []
    const clientCpuMs: number[] = []
    // Round 0 warms up (first writes on each stream, code not yet optimised) and is not counted.
    for (let round = 0; round <= plan.rounds; round++) {
      command({ arm: { round, subjectId: plan.subjectOf(round) } })
      errors += (await expect('armed'))?.missed ?? 0
      const received = expect('received', ROUND_TIMEOUT_MS)
      const start = performance.now()
      await plan.publish(round)
      const report = await received // on a timeout, the next arm reports the streams that missed it
      if (round === 0) continue
      times.push(performance.now() - start)
      clientCpuMs.push(report?.cpuMs ?? Number.NaN)
    }
    command({ arm: { round: -1, subjectId: '' } })
    errors += (await expect('armed'))?.missed ?? 0
    command({ close: true })
    errors += (await expect('closed'))?.closed.errors ?? 0
    await Promise.race([exited.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5_000).unref())])
    const sorted = [...times].sort((a, b) => a - b)
    return { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99), errors, serverBytesPerStream, roundsMs: times, clientCpuMs }
  } finally {
    child.kill()
  }
}
