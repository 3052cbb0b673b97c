// The shapes users run: one service alone in its own process (`npm run service`), the operator
// CLI issuing certificates, and a clean shutdown on SIGTERM.
import assert from 'node:assert/strict'
import { spawn, execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { HealthCheckResponse_ServingStatus, HealthClient } from '../../gen/grpc/health/v1/health.ts'
import { unaryCall } from '../../services/runtime/client.ts'
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

test('npm run service -- account-management runs one service alone, healthy, and stops cleanly on SIGTERM', async () => {
  const fresh = await freshDatabase()
  const port = 40000 + Math.floor(Math.random() * 20000)
  const child = spawn(TSX, ['cli/service.ts', 'account-management'], {
    cwd: ROOT,
    env: {
      ...process.env,
      CLOUDPAY_HOME: fresh.home,
      CLOUDPAY_ACCOUNT_MANAGEMENT_ADDR: `127.0.0.1:${port}`,
      ...(fresh.location.databaseUrl ? { DATABASE_URL: fresh.location.databaseUrl } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  try {
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (output.includes('"msg":"serving"')) resolve()
      }
      child.stdout.on('data', check)
      child.on('exit', (code) => reject(new Error(`exited with ${code}: ${output}`)))
    })
    const { ensureDevCertificate } = await import('../../services/runtime/dev-certificates.ts')
    const paths = await ensureDevCertificate(fresh.home, { role: 'operator', id: 'probe' })
    const health = new HealthClient(`127.0.0.1:${port}`, channelCredentials(paths, 1000))
    const reply = await unaryCall(health, 'check', { service: 'cloudpay.account.v1.AccountManagementService' })
    health.close()
    assert.equal(reply.status, HealthCheckResponse_ServingStatus.SERVING)
    const lines = output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
    assert.deepEqual(
      lines.find((l) => l.msg === 'serving')?.services.map((s: { name: string }) => s.name),
      ['account-management'],
    )
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    assert.equal(code, 0)
    assert.match(output, /"msg":"stopped"/)
  } finally {
    child.kill('SIGKILL')
    await fresh.drop()
  }
})
