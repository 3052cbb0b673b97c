// Background work a service runs beside its handlers (an outbox, a sweeper, a LISTEN hub, the
// retention purge): declared in the service's `workers` part, started by the host before the
// server takes calls and stopped in reverse order once it has drained (service-host.ts).
import { context, ROOT_CONTEXT } from '@opentelemetry/api'
import type { Logger } from './logger.ts'

export interface Worker {
  /** For logs, e.g. `outbox`, `order-expiry`, `retention`. */
  readonly name: string
  /** Begins the work; the host awaits it before the server binds (a failure stops the start-up). */
  start(): void | Promise<void>
  /** Ends the work, waiting for what is under way; the worker is not started again. */
  stop(): Promise<void>
}

/** Work run every `intervalMs`, one pass at a time. */
export interface Sweeper<T> extends Worker {
  /** Starts a pass now (right after the one under way, if any); resolves with its result. */
  runNow(): Promise<T>
  /** Resolves with the result of the next pass to start after this call (timer or runNow). */
  nextPass(): Promise<T>
}

export const isSweeper = (worker: Worker): worker is Sweeper<unknown> => 'runNow' in worker && 'nextPass' in worker

export interface SweeperOptions<T> {
  readonly name: string
  readonly intervalMs: number
  readonly log: Logger
  /** One pass; `signal` is aborted when the sweeper stops (a long pass ends early). */
  run(signal: AbortSignal): Promise<T>
}

interface Waiter<T> {
  resolve(value: T): void
  reject(error: unknown): void
}

/**
 * The one periodic-worker piece every service's background work uses: an unref'd interval (it
 * never keeps a process alive), passes that never overlap, each run outside any caller's trace
 * context, its failures logged rather than thrown, and a stop that waits for the pass under way.
 */
export function sweeper<T>(options: SweeperOptions<T>): Sweeper<T> {
  const abort = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let again = false
  let waiting: Waiter<T>[] = []

  const startPass = (): void => {
    const waiters = waiting
    waiting = []
    running = context
      .with(ROOT_CONTEXT, () => options.run(abort.signal))
      .then(
        (result) => {
          for (const waiter of waiters) waiter.resolve(result)
        },
        (error: unknown) => {
          options.log.warn({ err: error, worker: options.name }, `${options.name} pass failed`)
          for (const waiter of waiters) waiter.reject(error)
        },
      )
      .finally(() => {
        running = undefined
        if (again && !abort.signal.aborted) {
          again = false
          startPass()
        }
      })
  }
  const tick = (): void => {
    if (!abort.signal.aborted && !running) startPass()
  }
  const nextPass = (): Promise<T> =>
    abort.signal.aborted
      ? Promise.reject(new Error(`${options.name} is stopped`))
      : new Promise<T>((resolve, reject) => {
          waiting.push({ resolve, reject })
        })

  return {
    name: options.name,
    nextPass,
    runNow() {
      const result = nextPass()
      if (running) again = true
      else tick()
      return result
    },
    start() {
      if (timer || abort.signal.aborted) return
      timer = setInterval(tick, options.intervalMs)
      timer.unref()
    },
    async stop() {
      abort.abort()
      clearInterval(timer)
      await running
      for (const waiter of waiting.splice(0)) waiter.reject(new Error(`${options.name} stopped`))
    },
  }
}
