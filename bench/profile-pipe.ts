// Profiling aid: one publish to N durable Notify subscribers of a device, repeated, against an
// in-process mesh. `tsx bench/profile-pipe.ts [N] [rounds] [--cpu-prof FILE]` prints the fan-out
// times and, with --cpu-prof, writes a CPU profile of the publishes alone (not of subscribing).
import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventKind, InstanceEventsServiceClient } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { ALL_SERVICES } from '../services/registry.ts'
import { createClient, unaryCall } from '../services/runtime/client.ts'
import { ensureDevCertificate } from '../services/runtime/dev-certificates.ts'
import { createLogger } from '../services/runtime/logger.ts'
import { startMesh } from '../services/runtime/process.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { channelCredentials } from '../services/runtime/tls.ts'
import { fanOut, until } from './fan-out.ts'
import { benchConfig } from './mesh-config.ts'

const n = Number(process.argv[2] ?? 10_000)
const rounds = Number(process.argv[3] ?? 20)
const flag = process.argv.indexOf('--cpu-prof')
const profileFile = flag > 0 ? process.argv[flag + 1] : undefined
const profiler = new Session()
const home = await mkdtemp(join(tmpdir(), 'cloudpay-profile-'))
const config = benchConfig(home)
const telemetry = startTelemetry({ env: {} })
const mesh = await startMesh(ALL_SERVICES, { config, telemetry, log: createLogger({ level: 'warn', name: 'profile' }) })
const address = mesh.services.find((s) => s.name === 'instance-events')!.address
const device = `profile-pipe-${randomUUID().slice(0, 8)}`
const certificates = await ensureDevCertificate(home, { role: 'instance', id: device })
const publisher = createClient(InstanceEventsServiceClient, address, channelCredentials(certificates, 60_000))
const publish = (subjectId: string) =>
  unaryCall(publisher, 'publish', { requestId: randomUUID(), deviceId: device, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId })
const start = (await publish('warm-up')).event!.sequence
const pipe = mesh.services.find((s) => s.name === 'instance-events')!
const run = await fanOut({
  open: { kind: 'pipe', address, certificates, n, deviceId: device, afterSequence: String(start) },
  ready: async () => {
    await until(() => pipe.introspect().subscribers! >= n, () => `the pipe holds ${pipe.introspect().subscribers} of ${n} subscribers`)
    if (profileFile) {
      profiler.connect()
      await profiler.post('Profiler.enable')
      await profiler.post('Profiler.start')
    }
  },
  subjectOf: (r) => `round-${r}`,
  publish: (r) => publish(`round-${r}`).then(() => undefined),
  rounds,
})
if (profileFile) {
  const { profile } = await profiler.post('Profiler.stop')
  await writeFile(profileFile, JSON.stringify(profile))
}
process.stderr.write(
  `fan-out to ${n}: p50 ${run.p50Ms.toFixed(1)} ms, p99 ${run.p99Ms.toFixed(1)} ms, ${run.errors} errors, ${(run.serverBytesPerStream / 1024).toFixed(1)} KB server memory per subscriber\nrounds (ms): ${run.roundsMs.map((t) => t.toFixed(0)).join(' ')}\nsubscriber process CPU per round (ms): ${run.clientCpuMs.map((t) => t.toFixed(0)).join(' ')}\n`,
)
publisher.close()
await mesh.stop()
process.exit(0)
