// The embedded database belongs to one process: a second process is refused with a message that
// names DATABASE_URL, and a lock left by a killed process is taken over by the next one.
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

const DATABASE_MODULE = new URL('../../services/runtime/database.ts', import.meta.url).href

/** A process that opens the embedded database and says 'open' (then holds it, or releases it and exits). */
function opener(dataDir: string, hold: boolean): { child: ChildProcess; said: Promise<string> } {
  const script = [
    `const { openDatabase } = await import(${JSON.stringify(DATABASE_MODULE)})`,
    `try { const db = await openDatabase({ databaseUrl: undefined, dataDir: ${JSON.stringify(dataDir)} }); console.log('open')`,
    hold ? 'setInterval(() => {}, 1000) }' : 'await db.release(); process.exit(0) }',
    `catch (error) { console.log(error.message); process.exit(3) }`,
  ].join('\n')
  // stderr ignored: tsx's esbuild helper would otherwise keep the test's stderr open after a kill.
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] })
  let out = ''
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const said = new Promise<string>((resolve) => {
    child.stdout!.on('data', () => out.includes('\n') && resolve(out.trim()))
    child.on('exit', () => resolve(out.trim()))
  })
  return { child, said }
}

test('a second process cannot open the same embedded database; a crashed owner leaves no lock behind', async () => {
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-lock-'))
  const dataDir = join(home, 'db')
  try {
    const owner = opener(dataDir, true)
    assert.equal(await owner.said, 'open')
    const second = opener(dataDir, false)
    const refusal = await second.said
    assert.match(refusal, /in use by process \d+/)
    assert.match(refusal, /DATABASE_URL/)
    owner.child.kill('SIGKILL')
    await once(owner.child, 'exit')
    const next = opener(dataDir, false)
    assert.equal(await next.said, 'open', 'the lock of a killed process is taken over')
    const [code] = (await once(next.child, 'exit')) as [number]
    assert.equal(code, 0)
    assert.equal(existsSync(`${dataDir}.lock`), false, 'released cleanly')
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})
