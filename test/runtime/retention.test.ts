// The shared retention pieces: a purge deletes batch by batch and lets the event loop run between
// batches; the periodic worker runs one pass at a time, from its timer or on demand, survives a
// failing pass, and its stop waits for the pass under way and tells it to stop.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '../../services/runtime/logger.ts'
import { type Purge, purge, purgeAll } from '../../services/runtime/retention.ts'
import { sweeper } from '../../services/runtime/workers.ts'

const logLines: string[] = []
const log = createLogger({ level: 'warn', name: 'retention-test', destination: { write: (line: string) => void logLines.push(line) } })

/** A kind with `rows` rows to delete, recording each statement's cutoff and limit. */
function fakeKind(rows: number, windowMs = 1000): Purge & { calls: { cutoff: Date; limit: number }[] } {
  let left = rows
  const calls: { cutoff: Date; limit: number }[] = []
  return {
    name: 'fake',
    windowMs,
    calls,
    async deleteBatch(cutoff, limit) {
      calls.push({ cutoff, limit })
      const n = Math.min(limit, left)
      left -= n
      return n
    },
  }
}

test('a purge deletes in bounded batches until one comes back short, measuring its window back from now', async () => {
  const kind = fakeKind(1200)
  const now = new Date('2030-01-01T00:00:00Z')
  assert.equal(await purge(kind, { now }), 1200)
  assert.deepEqual(
    kind.calls.map((c) => c.limit),
    [500, 500, 500],
    'three statements of at most 500 rows; the short third one ends it',
  )
  assert.ok(kind.calls.every((c) => c.cutoff.getTime() === now.getTime() - 1000))
})

test('between batches the event loop runs: I/O and timers are not starved by a long purge', async () => {
  let ticks = 0
  let ticking = true
  const tick = (): void => {
    ticks += 1
    if (ticking) setImmediate(tick)
  }
  setImmediate(tick)
  const seenAtBatch: number[] = []
  const kind: Purge = {
    name: 'busy',
    windowMs: 0,
    // Resolves without ever reaching the event loop, as chained PGlite queries do.
    deleteBatch: async (_cutoff, limit) => {
      seenAtBatch.push(ticks)
      return seenAtBatch.length < 10 ? limit : 0
    },
  }
  await purge(kind)
  ticking = false
  for (let i = 1; i < seenAtBatch.length; i++) assert.ok(seenAtBatch[i]! > seenAtBatch[i - 1]!, `the event loop turned between batches ${i} and ${i + 1}`)
})

test('a purge stops between batches once its signal is aborted; purgeAll reports a failing kind and goes on', async () => {
  const abort = new AbortController()
  const kind = fakeKind(10_000)
  const stopping: Purge = { ...kind, deleteBatch: async (c, l) => (kind.calls.length === 2 && abort.abort(), kind.deleteBatch(c, l)) }
  assert.equal(await purge(stopping, { signal: abort.signal }), 1500)
  const failures: string[] = []
  const broken: Purge = { name: 'broken', windowMs: 0, deleteBatch: () => Promise.reject(new Error('no such table')) }
  const counts = await purgeAll([broken, { ...fakeKind(3), name: 'after' }], { onError: (k, e) => failures.push(`${k.name}: ${(e as Error).message}`) })
  assert.deepEqual(counts, { after: 3 })
  assert.deepEqual(failures, ['broken: no such table'])
})

test('the periodic worker: one pass at a time, from its timer or on demand; a failed pass is logged and the next one runs', async () => {
  let active = 0
  let most = 0
  let passes = 0
  let release!: () => void
  let gate = new Promise<void>((resolve) => (release = resolve))
  let fail = false
  // The worker's timer never keeps a process alive (a server does); this test's process needs something to.
  const keepAlive = setInterval(() => undefined, 1000)
  const worker = sweeper({
    name: 'test worker',
    intervalMs: 5,
    log,
    run: async () => {
      active += 1
      most = Math.max(most, active)
      passes += 1
      const mine = passes
      await gate
      active -= 1
      if (fail) throw new Error('database away')
      return mine
    },
  })
  worker.start()
  try {
    const fromTimer = worker.nextPass()
    release()
    assert.equal(await fromTimer, 1, 'the timer starts passes on its own')
    gate = new Promise<void>((resolve) => (release = resolve))
    const first = worker.runNow()
    const second = worker.runNow() // asked while one is under way: runs right after it
    release()
    const [a, b] = await Promise.all([first, second])
    assert.ok(b >= a && a > 1)
    assert.equal(most, 1, 'passes never overlap')
    fail = true
    await assert.rejects(worker.runNow(), /database away/)
    assert.ok(logLines.some((line) => line.includes('test worker pass failed')))
    fail = false
    assert.ok((await worker.runNow()) > b, 'the worker goes on after a failure')
  } finally {
    await worker.stop()
    clearInterval(keepAlive)
  }
})

test('stopping the worker tells the pass under way to stop, waits for it, and starts no more', async () => {
  let signalSeen: AbortSignal | undefined
  let started!: () => void
  const running = new Promise<void>((resolve) => (started = resolve))
  let finished = false
  const worker = sweeper({
    name: 'stopping worker',
    intervalMs: 60_000,
    log,
    run: async (signal) => {
      signalSeen = signal
      started()
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
      finished = true
      return 0
    },
  })
  worker.start()
  const pass = worker.runNow()
  await running
  await worker.stop()
  assert.equal(signalSeen?.aborted, true)
  assert.equal(finished, true, 'stop() returned only after the pass ended')
  assert.equal(await pass, 0)
  await assert.rejects(worker.runNow(), /stopped/)
})
