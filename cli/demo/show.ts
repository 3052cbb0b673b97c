// Runs the demo against a mesh and prints it: narrated steps and the order's waterfall, or (with
// --json) one JSON summary.
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config, ServiceName } from '../../services/runtime/config.ts'
import { readStoredSpans } from '../../services/runtime/span-file.ts'
import type { Telemetry } from '../../services/runtime/telemetry.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { waterfall } from '../waterfall.ts'
import { demoClients } from './clients.ts'
import { type DemoSummary, runDemo } from './run.ts'
import { OPERATOR } from './steps.ts'

export async function showDemo(config: Config, addresses: ReadonlyMap<ServiceName, string>, telemetry: Telemetry, json: boolean): Promise<DemoSummary> {
  const clients = demoClients(config, addresses, telemetry)
  try {
    const say = json ? () => undefined : (line: string) => process.stdout.write(`${line}\n`)
    const { caFile } = await certificateFiles(config, OPERATOR)
    const summary = await runDemo(clients, (party) => telemetry.tracer(party), say, { caFile })
    await telemetry.forceFlush()
    if (json) {
      process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
      return summary
    }
    if (config.traceFile) {
      // The services export in batches: wait until the application's part of the order arrived.
      let spans = readStoredSpans(config.traceFile)
      for (let i = 0; i < 25 && !spans.some((s) => s.traceId === summary.order.traceId && s.service === 'cloudpay-app-service' && s.name.endsWith('FulfilOrder')); i++) {
        await sleep(200)
        spans = readStoredSpans(config.traceFile)
      }
      process.stdout.write(`\nThe order as one trace (${summary.order.traceId}):\n\n${waterfall(spans, summary.order.traceId)}\n`)
      process.stdout.write(`Again any time: npm run cloudpay -- trace ${summary.order.orderId}   (the login: npm run cloudpay -- trace ${summary.traceIds.login}; the pushed order: npm run cloudpay -- trace ${summary.pushedOrder.orderId})\n`)
    }
    return summary
  } finally {
    clients.close()
  }
}
