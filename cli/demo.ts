// `npm run demo [-- --json]`: acts out login and payment as operator, instance and terminal
// against the running mesh, or starts one in this process when none answers.
import pino from 'pino'
import { HealthClient } from '../gen/grpc/health/v1/health.ts'
import { ALL_SERVICES } from '../services/registry.ts'
import { createClient, unaryCall } from '../services/runtime/client.ts'
import { loadConfig } from '../services/runtime/config.ts'
import { createLogger } from '../services/runtime/logger.ts'
import { startMesh } from '../services/runtime/process.ts'
import { addressBook } from '../services/runtime/service-host.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { certificateFiles, channelCredentials } from '../services/runtime/tls.ts'
import { showDemo } from './demo/show.ts'

const json = process.argv.includes('--json')
const config = loadConfig()
const telemetry = startTelemetry({ spanFile: config.traceFile })

async function meshAnswers(): Promise<boolean> {
  const paths = await certificateFiles(config, { role: 'operator', id: 'demo-operator' })
  // The configured target as every client dials it (a replica list or dns:/// name included).
  const health = createClient(HealthClient, config.addresses['account-management'], channelCredentials(paths, config.tlsRefreshMs))
  try {
    await unaryCall(health, 'check', { service: '' }, { deadlineMs: 1500 })
    return true
  } catch {
    return false
  } finally {
    health.close()
  }
}

let stop = async (): Promise<void> => undefined
let addresses = addressBook(config)
if (!(await meshAnswers())) {
  if (!json) process.stdout.write('No mesh answers at the configured addresses: starting one in this process.\n')
  // The mesh's log lines go to stderr: stdout is the demo's own (its story, or the one JSON summary of --json).
  const log = createLogger({ level: 'warn', name: 'cloudpay', destination: pino.destination({ fd: 2, sync: true }) })
  const mesh = await startMesh(ALL_SERVICES, { config, telemetry, log })
  addresses = new Map(mesh.services.map((s) => [s.name, s.address]))
  stop = () => mesh.stop()
}
try {
  await showDemo(config, addresses, telemetry, json)
} catch (error) {
  process.stderr.write(`demo failed: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 1
} finally {
  await stop()
  await telemetry.shutdown()
}
process.exit(process.exitCode ?? 0)
