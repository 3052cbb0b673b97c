// The operator CLI: --help succeeds, an unknown command says so and fails.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'

const run = promisify(execFile)
const CLI = new URL('../../cli/cloudpay.ts', import.meta.url).pathname

test('cloudpay --help exits 0 with the usage; an unknown command names itself and exits 2', async () => {
  const help = await run(process.execPath, ['--import', 'tsx', CLI, '--help'])
  assert.match(help.stdout, /usage: npm run cloudpay -- cert/)
  const unknown = await run(process.execPath, ['--import', 'tsx', CLI, 'frobnicate']).then(
    () => assert.fail('an unknown command succeeded'),
    (error: { code: number; stderr: string }) => error,
  )
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /unknown command "frobnicate"/)
})
