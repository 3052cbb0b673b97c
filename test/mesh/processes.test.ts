// The shapes users run: one service alone in its own process (`npm run service`), the operator
// CLI issuing certificates, and a clean shutdown on SIGTERM.
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { createClient, unaryCall } from '../../services/runtime/client.ts'
import { channelCredentials } from '../../services/runtime/tls.ts'
import { freshDatabase } from '../helpers/database.ts'

const run = promisify(execFile)
const ROOT = new URL('../..', import.meta.url).pathname
const TSX = join(ROOT, 'node_modules/.bin/tsx')

test('cloudpay cert issues a certificate with exactly one SPIFFE URI SAN from the dev CA', async () => {
  const home = await mkdtemp(join(tmpdir(), 'cloudpay-cli-'))
  try {
    const { stdout } = await run(TSX, ['cli/cloudpay.ts', 'cert', 'operator', 'ada'], { cwd: ROOT, env: { ...process.env, CLOUDPAY_HOME: home } })
    assert.match(stdout, /identity spiffe:\/\/cloudpay\.local\/operator\/ada/)
    const certFile = /cert (.+)/.exec(stdout)![1]!.trim()
    const cert = new X509Certificate(await readFile(certFile))
    assert.equal(cert.subjectAltName, 'URI:spiffe://cloudpay.local/operator/ada')
    assert.ok(cert.checkIssued(new X509Certificate(await readFile(join(home, 'certs', 'ca.crt')))))
    await assert.rejects(run(TSX, ['cli/cloudpay.ts', 'cert', 'admin', 'x'], { cwd: ROOT, env: { ...process.env, CLOUDPAY_HOME: home } }), /usage/)
  } finally {
    await rm(home, { recursive: true, force: true })
  }
})

test('npm run service -- account-management runs one service alone, healthy, and drains when SIGTERM reaches npm alone', { timeout: 90_000 }, async () => {
  const fresh = await freshDatabase()
  // Its own process group, as a container's PID 1 would be: the signal goes to npm's PID only.
  const child = spawn('npm', ['run', '-s', 'service', '--', 'account-management'], {
    cwd: ROOT,
    detached: true,
    env: {
      ...process.env,
      CLOUDPAY_HOME: fresh.home,
      CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR: '127.0.0.1:0',
      ...(fresh.location.databaseUrl ? { DATABASE_URL: fresh.location.databaseUrl } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const lines = () =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; services?: { name: string; address: string }[] })
  const logged = (msg: string) =>
    new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (lines().some((l) => l.msg === msg)) resolve()
      }
      child.stdout.on('data', check)
      // npm itself may exit first; the output ends when the last process writing it does.
      child.stdout.on('close', () => (lines().some((l) => l.msg === msg) ? resolve() : reject(new Error(`output ended before ${msg}: ${output}`))))
      check()
    })
  try {
    await logged('serving')
    const serving = lines().find((l) => l.msg === 'serving')!
    assert.deepEqual(
      serving.services!.map((s) => s.name),
      ['account-management'],
    )
    const { ensureDevCertificate } = await import('../../services/runtime/dev-certificates.ts')
    const paths = await ensureDevCertificate(fresh.home, { role: 'operator', id: 'probe' })
    const health = createClient(HealthClient, serving.services![0]!.address, channelCredentials(paths, 1000))
    // Closed whatever happens: an open channel's reconnect timer would keep this file's process alive.
    const reply = await unaryCall(health, 'check', { service: 'cloudpay.account.v1.AccountManagementService' }).finally(() => health.close())
    assert.equal(reply.status, HealthCheckResponse_ServingStatus.SERVING)
    process.kill(child.pid!, 'SIGTERM')
    await logged('stopped')
    // Nothing of the group is left serving.
    await until(() => !groupAlive(child.pid!))
  } finally {
    if (groupAlive(child.pid!)) process.kill(-child.pid!, 'SIGKILL')
    await fresh.drop()
  }
})

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    assert.ok(Date.now() < deadline, 'timed out')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
