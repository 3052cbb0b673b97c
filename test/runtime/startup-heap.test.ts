// The young generation is held at its initial size while a service starts and grows again once it
// serves (services/runtime/startup-heap.ts); an operator's own young-generation flag wins.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'

const MODULE = new URL('../../services/runtime/startup-heap.ts', import.meta.url).href
// A start-up-like burst: objects that survive several scavenges, which is what makes V8 grow new space.
const PROGRAM = `
import { getHeapSpaceStatistics } from 'node:v8'
const { holdYoungGenerationWhileStarting } = await import(${JSON.stringify(MODULE)})
const newSpace = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size
const burst = () => { const kept = []; for (let i = 0; i < 400000; i++) { kept.push({ i, s: 'x' + i }); if (kept.length > 60000) kept.splice(0, 20000) } return kept.length }
const release = holdYoungGenerationWhileStarting()
burst()
const whileStarting = newSpace()
release()
burst(); burst()
console.log(JSON.stringify({ whileStarting, serving: newSpace() }))
`
const run = (execArgv: string[] = []) =>
  JSON.parse(execFileSync(process.execPath, [...execArgv, '--import', 'tsx', '--input-type=module', '-e', PROGRAM], { encoding: 'utf8' })) as { whileStarting: number; serving: number }

test('the young generation stays at its initial size while starting and grows once serving', () => {
  const { whileStarting, serving } = run()
  assert.ok(whileStarting <= 4 * 1024 * 1024, `new space while starting: ${whileStarting} bytes`)
  assert.ok(serving > whileStarting, `new space once serving (${serving}) grows past ${whileStarting}`)
})

test("an operator's young-generation flag is left alone", () => {
  const { whileStarting } = run(['--max-semi-space-size=16'])
  assert.ok(whileStarting > 4 * 1024 * 1024, `new space while starting: ${whileStarting} bytes`)
})
