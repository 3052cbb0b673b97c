// While a service starts its young generation is held at its initial size; once it serves, one
// compacting GC hands start-up's garbage back and the young generation may grow again
// (services/runtime/startup-heap.ts). An operator's own young-generation flag wins.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'

const MODULE = new URL('../../services/runtime/startup-heap.ts', import.meta.url).href
// A start-up-like burst: objects that survive several scavenges (which is what makes V8 grow new space
// and promote them), then die together, as parsing and migrations do.
const PROGRAM = `
import { getHeapSpaceStatistics } from 'node:v8'
const { holdYoungGenerationWhileStarting } = await import(${JSON.stringify(MODULE)})
const space = (name, field) => getHeapSpaceStatistics().find((s) => s.space_name === name)[field]
const burst = () => { const kept = []; for (let i = 0; i < 400000; i++) { kept.push({ i, s: 'x' + i }); if (kept.length > 60000) kept.splice(0, 20000) } return kept.length }
const release = holdYoungGenerationWhileStarting()
// Held on globalThis until read, not in a local: optimized code may treat a local no longer read as
// dead, and old space then sometimes read 11.5-25 MB here instead of 72-79 (a CI run failed on it).
globalThis.startUp = []
for (let i = 0; i < 600000; i++) globalThis.startUp.push({ i, s: 'y' + i })
burst()
const whileStarting = { newSpace: space('new_space', 'space_size'), oldSpace: space('old_space', 'physical_space_size') }
globalThis.startUp = undefined
release()
const released = { oldSpace: space('old_space', 'physical_space_size') }
burst(); burst()
console.log(JSON.stringify({ whileStarting, released, serving: { newSpace: space('new_space', 'space_size') } }))
`
interface Heap {
  whileStarting: { newSpace: number; oldSpace: number }
  released: { oldSpace: number }
  serving: { newSpace: number }
}
const run = (execArgv: string[] = []) =>
  JSON.parse(execFileSync(process.execPath, [...execArgv, '--import', 'tsx', '--input-type=module', '-e', PROGRAM], { encoding: 'utf8' })) as Heap
const MB = 1024 * 1024

test('the young generation stays at its initial size while starting and grows once serving', () => {
  const { whileStarting, serving } = run()
  assert.ok(whileStarting.newSpace <= 4 * MB, `new space while starting: ${whileStarting.newSpace} bytes`)
  assert.ok(serving.newSpace > whileStarting.newSpace, `new space once serving (${serving.newSpace}) grows past ${whileStarting.newSpace}`)
})

test("start-up's dead objects are collected and their old-space pages handed back once serving", () => {
  const { whileStarting, released } = run()
  assert.ok(released.oldSpace < whileStarting.oldSpace / 2, `old space ${whileStarting.oldSpace} -> ${released.oldSpace} bytes`)
})

test("an operator's young-generation flag is left alone", () => {
  const { whileStarting } = run(['--max-semi-space-size=16'])
  assert.ok(whileStarting.newSpace > 4 * MB, `new space while starting: ${whileStarting.newSpace} bytes`)
})

test('gc stays unexposed to the program', () => {
  const exposed = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', `
    const { compactHeapOnce } = await import(${JSON.stringify(MODULE)})
    compactHeapOnce()
    const { runInNewContext } = await import('node:vm')
    console.log(typeof globalThis.gc, runInNewContext('typeof gc'))`], { encoding: 'utf8' })
  assert.equal(exposed.trim(), 'undefined undefined')
})
