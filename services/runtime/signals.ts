// How a cloudpay process stops: once, on SIGINT or SIGTERM, or when the process that started it is
// gone (`npm run` does not pass SIGTERM on: npm exits and this process would serve on, orphaned);
// the exit code says whether stopping worked.
export interface StopReport {
  /** Told the reason once stopping begins. */
  stopping(reason: string): void
  stopped(): void
  failed(error: unknown): void
}

export function stopOnSignals(stop: () => Promise<void>, report: StopReport): void {
  let stopping = false
  const shutdown = (reason: string): void => {
    if (stopping) return
    stopping = true
    report.stopping(reason)
    stop().then(
      () => {
        report.stopped()
        process.exit(0)
      },
      (error: unknown) => {
        report.failed(error)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) shutdown('parent exited')
  }, 500).unref()
}
