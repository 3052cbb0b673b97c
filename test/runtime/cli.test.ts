// The operator CLI: --help succeeds, an unknown command says so and fails; offline-code refuses bad arguments.
import assert from 'node:assert/strict'
import { execFile, execFile as execFileCb } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

test('cloudpay seal names what is missing, refuses a password on no variable, and refuses stdin that is not a GetSealingKeys answer', async () => {
  const seal = (args: string[], env: Record<string, string> = {}, input = '') =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFileCb(process.execPath, ['--import', 'tsx', CLI, 'seal', ...args], { env: { ...process.env, ...env } }, (error, _stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr }),
      )
      child.stdin!.end(input)
    })
  const args = ['--device', 'd', '--order', 'o', '--platform', 'alphapay', '--serial', 'TX1', '--amount', '499', '--currency', 'USD']
  const missing = await seal(['--device', 'd'])
  assert.equal(missing.code, 2)
  assert.match(missing.stderr, /missing --order, --platform, --serial, --amount, --currency/)
  assert.match((await seal(args.map((a) => (a === '499' ? '4.99' : a)), { CLOUDPAY_PAYMENT_PASSWORD: 'x' })).stderr, /--amount must be a positive whole number/)
  const { CLOUDPAY_PAYMENT_PASSWORD: _, ...without } = process.env
  assert.match((await seal(args, without as Record<string, string>)).stderr, /CLOUDPAY_PAYMENT_PASSWORD must hold/)
  const garbage = await seal(args, { CLOUDPAY_PAYMENT_PASSWORD: 'pay-1' }, 'not json')
  assert.equal(garbage.code, 2)
  assert.match(garbage.stderr, /stdin must be the JSON of a GetSealingKeys answer/)
})

test('cloudpay offline-code: --help lists its commands; a bad argument or a missing credential is a usage error (exit 2)', async () => {
  const help = await run(process.execPath, ['--import', 'tsx', CLI, '--help'])
  for (const command of ['payee', 'provision', 'generate', 'redeem', 'list']) assert.match(help.stdout, new RegExp(`offline-code ${command} `))
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-cli-'))
  try {
    const refused = async (args: string[]) =>
      run(process.execPath, ['--import', 'tsx', CLI, 'offline-code', ...args], { env: { ...process.env, CLOUDPAY_HOME: home } }).then(
        () => assert.fail(`offline-code ${args.join(' ')} succeeded`),
        (error: { code: number; stderr: string }) => error,
      )
    const noCredential = await refused(['generate', 'phone-cli', 'cppayee1.AAAA', '100'])
    assert.equal(noCredential.code, 2)
    assert.match(noCredential.stderr, /no offline credential .*provision one first/)
    const badAmount = await refused(['provision', 'phone-cli', 'alphapay', 'PAYER0001', 'lots', '100'])
    assert.equal(badAmount.code, 2)
    assert.match(badAmount.stderr, /allowance-minor must be a whole number/)
    const unknown = await refused(['frobnicate'])
    assert.equal(unknown.code, 2)
    assert.match(unknown.stderr, /unknown offline-code command "frobnicate"/)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})
