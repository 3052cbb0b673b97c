// An OTLP backend that is down costs its spans, never a flow: the demo completes, and the export
// trouble is logged once (not per batch), while spans are still kept for `cloudpay trace`.
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, test } from 'node:test'
import { runDemo } from '../../cli/demo/run.ts'
import { OPERATOR } from '../../cli/demo/steps.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts'

let t: TestMesh
before(async () => {
  // A port that was just free: nothing listens there.
  const closed = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  t = await startTestMesh({
    telemetryEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TIMEOUT: '1000' },
  })
})
after(async () => t?.stop())

test('with the OTLP endpoint down, the demo completes, flushing does not fail, and the trouble is logged once', async () => {
  const summary = await runDemo(t, (party) => t.telemetry.tracer(party), () => undefined, { caFile: (await certificateFiles(t.config, OPERATOR)).caFile })
  assert.ok(summary.order.orderId)
  await t.telemetry.forceFlush()
  await runDemo(t, (party) => t.telemetry.tracer(party), () => undefined, { caFile: (await certificateFiles(t.config, OPERATOR)).caFile })
  await t.telemetry.forceFlush()
  const warnings = t.logLines.map((line) => JSON.parse(line) as { msg: string }).filter((line) => line.msg.startsWith('span export is failing'))
  assert.equal(warnings.length, 1, 'one warning, not one per batch')
})
