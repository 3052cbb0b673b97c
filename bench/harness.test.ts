// The benchmark harness runs (--quick, on PGlite) and writes a complete, well-formed result file.
// A CI step of its own (.ci/run), not part of npm test: it loads the machine for minutes.
// Its figures are not asserted: speed belongs in the benchmark, not in tests.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = new URL('..', import.meta.url).pathname

test('npm run bench -- --quick produces a complete result file', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cloudpay-bench-results-'))
  try {
    const { stdout } = await run('node', ['--expose-gc', '--import', 'tsx', 'bench/run.ts', '--quick'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: '', CLOUDPAY_BENCH_RESULTS: dir },
      timeout: 170_000,
    })
    assert.match(stdout, /cloudpay bench · pglite/)
    for (const row of ['bare unary echo', 'bare stream fan-out', 'login flow', 'order flow', 'pipe fan-out']) assert.match(stdout, new RegExp(row))
    const files = await readdir(dir)
    assert.equal(files.length, 1)
    const result = JSON.parse(await readFile(join(dir, files[0]!), 'utf8'))
    assert.match(result.commit, /^[0-9a-f]{7,}|unknown$/)
    assert.equal(result.database, 'pglite')
    assert.equal(result.quick, true)
    assert.ok(result.machine.cores >= 1)
    assert.ok(result.versions['grpc-js'] && result.versions.node)
    for (const c of result.levels) {
      assert.ok(result.results.baseline.unary[c].perSecond > 0)
      for (const flow of ['login', 'order']) {
        const figures = result.results.flows[flow][c]
        assert.ok(figures.count > 0, `${flow} at c=${c} completed flows`)
        for (const key of ['perSecond', 'p50Ms', 'p99Ms', 'errors', 'rpcsPerFlow', 'commitsPerFlow', 'ratioThroughput'])
          assert.equal(typeof figures[key], 'number', `${flow}.${c}.${key}`)
      }
    }
    for (const key of ['p50Ms', 'cpuMsPerVerify', 'maxPerSecond']) assert.ok(result.results.baseline.passwordHash[key] > 0, `passwordHash.${key}`)
    for (const n of Object.keys(result.results.baseline.fanOut)) assert.ok(result.results.baseline.fanOut[n].bytesPerStream > 0, `bare fan-out n=${n} server memory`)
    assert.ok(result.results.targets.length >= 7)
    for (const t of result.results.targets) {
      assert.equal(typeof t.target, 'string')
      assert.equal(typeof t.value, 'number', t.target)
      assert.equal(typeof t.met, 'boolean', t.target)
    }
    // The flow targets say whether this machine could meet them at all, and why.
    const flowTargets = result.results.targets.filter((t: { target: string }) => /flow|p50/.test(t.target))
    assert.equal(flowTargets.length, 3)
    for (const t of flowTargets) assert.ok(typeof t.reachable === 'boolean' && typeof t.why === 'string' && t.why.length > 0, t.target)
    for (const n of Object.keys(result.results.pipe)) {
      for (const key of ['p50Ms', 'p99Ms', 'errors', 'bytesPerSubscriber', 'ratioP99']) assert.equal(typeof result.results.pipe[n][key], 'number', `pipe.${n}.${key}`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
