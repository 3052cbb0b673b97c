// One trace per flow, across every service and the asynchronous steps, as a dashboard receives it
// (a real OTLP/HTTP receiver in this process), as `cloudpay trace` prints it, and no secrets in it.
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import { type AddressInfo, createServer as createNetServer } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { promisify } from 'node:util'
import { SpanKind } from '@opentelemetry/api'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { type DemoSummary, runDemo } from '../../cli/demo/run.ts'
import { OPERATOR } from '../../cli/demo/steps.ts'
import { addressVariable, SERVICE_NAMES } from '../../services/runtime/config.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { startTestMesh, type TestMesh } from '../helpers/mesh.ts'
import { findSecret } from '../helpers/secrets.ts'

const run = promisify(execFile)
const ROOT = new URL('../..', import.meta.url).pathname
const SECRETS = { password: 'trace-test-password-1', payerAccount: 'TRACEPAYER998877', paymentPassword: 'trace-pay-4321' }

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  attributes?: { key: string; value: { stringValue?: string } }[]
}
const received: { service: string; span: OtlpSpan }[] = []
let receiver: Server
let t: TestMesh
let summary: DemoSummary

before(async () => {
  receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => (body += chunk.toString()))
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as {
          resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[]
        }
        for (const resourceSpans of payload.resourceSpans) {
          const service = resourceSpans.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?'
          for (const scope of resourceSpans.scopeSpans) for (const span of scope.spans) received.push({ service, span })
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  const port = (receiver.address() as { port: number }).port
  t = await startTestMesh({ telemetryEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } })
  summary = await runDemo(
    t,
    (party) => t.telemetry.tracer(party),
    () => undefined,
    { secrets: SECRETS, caFile: (await certificateFiles(t.config, OPERATOR)).caFile },
  )
  await t.telemetry.forceFlush()
})
after(async () => {
  await t?.stop()
  receiver?.close()
})

const spansOf = (traceId: string) => t.spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId)
const serviceOf = (span: ReadableSpan) => String(span.resource.attributes['service.name'])

test('a login is one trace through the instance, the terminal and the services it touches', () => {
  const spans = spansOf(summary.traceIds.login)
  const services = new Set(spans.filter((s) => s.kind === SpanKind.SERVER).map(serviceOf))
  assert.deepEqual([...services].sort(), ['cloudpay-account-management', 'cloudpay-app-service', 'cloudpay-instance-events'])
  const outside = t.spans.getFinishedSpans().filter((s) => s.attributes['cloudpay.login_id'] === summary.login.loginId && s.spanContext().traceId !== summary.traceIds.login)
  assert.deepEqual(
    outside.map((s) => s.name),
    [],
    'no span of this login is in another trace',
  )
  const parties = new Set(spans.map(serviceOf))
  assert.ok(parties.has('cloudpay-terminal') && parties.has('cloudpay-instance'), 'the terminal continued the trace from the event')
})

test('an order is one trace across all five services, parent to child through the asynchronous steps', () => {
  const spans = spansOf(summary.traceIds.order)
  const servers = spans.filter((s) => s.kind === SpanKind.SERVER)
  assert.deepEqual([...new Set(servers.map(serviceOf))].sort(), [
    'cloudpay-account-management',
    'cloudpay-app-service',
    'cloudpay-instance-events',
    'cloudpay-payment-management',
    'cloudpay-payment-platform',
  ])
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]))
  const ancestors = (span: ReadableSpan): ReadableSpan[] => {
    const chain: ReadableSpan[] = []
    for (let parent = byId.get(span.parentSpanContext?.spanId ?? ''); parent; parent = byId.get(parent.parentSpanContext?.spanId ?? '')) chain.push(parent)
    return chain
  }
  const fulfil = servers.find((s) => s.name === 'cloudpay.app.v1.AppService/FulfilOrder')!
  const chain = ancestors(fulfil).map((s) => `${serviceOf(s)} ${s.name}`)
  for (const step of [
    'cloudpay-payment-management outbox fulfil',
    'cloudpay-payment-management cloudpay.payment.v1.PaymentManagementService/ReportPaymentResult',
    'cloudpay-payment-platform outbox payment-result',
    'cloudpay-payment-platform cloudpay.platform.v1.PaymentPlatformService/Pay',
    'cloudpay-terminal terminal: pay',
  ]) {
    assert.ok(chain.includes(step), `FulfilOrder descends from ${step}; chain: ${chain.join(' <- ')}`)
  }
  for (const span of spans.filter((s) => ['cloudpay-payment-management', 'cloudpay-payment-platform'].includes(serviceOf(s)) && !s.name.startsWith('db '))) {
    // FetchOrder chooses the order inside it: it is tagged once found, its checks before are not.
    if ([span, ...ancestors(span)].some((s) => s.name.endsWith('/FetchOrder'))) continue
    assert.equal(span.attributes['cloudpay.order_id'], summary.order.orderId, `${serviceOf(span)} ${span.name} carries the order id`)
  }
  assert.equal(fulfil.attributes['cloudpay.order_id'], summary.order.orderId)
  const states = spans.flatMap((s) => s.events.filter((e) => e.name === 'order state').map((e) => e.attributes?.['cloudpay.order_state']))
  for (const state of ['fetched', 'awaiting_payment', 'paid', 'effective']) assert.ok(states.includes(state), `state change to ${state} is a span event`)
  assert.ok(
    spans.some((s) => s.name.startsWith('db ') && s.attributes['db.system.name'] === 'postgresql'),
    'queries are spans too',
  )
})

test('a pushed order is one trace: the push to both terminals, the claim, the relay, the sealed payment, the fulfilment', () => {
  const spans = spansOf(summary.traceIds.pushedOrder)
  const names = new Set(spans.filter((s) => s.kind === SpanKind.SERVER).map((s) => `${serviceOf(s)} ${s.name}`))
  for (const step of [
    'cloudpay-payment-management cloudpay.payment.v1.PaymentManagementService/SubmitOrder',
    'cloudpay-instance-events cloudpay.events.v1.InstanceEventsService/PublishToTerminals',
    'cloudpay-payment-management cloudpay.payment.v1.PaymentManagementService/ClaimOrder',
    'cloudpay-payment-management cloudpay.payment.v1.PaymentManagementService/GetSealingKeys',
    'cloudpay-payment-management cloudpay.payment.v1.PaymentManagementService/PayThroughRelay',
    'cloudpay-payment-platform cloudpay.platform.v1.PaymentPlatformService/PaySealed',
    'cloudpay-app-service cloudpay.app.v1.AppService/FulfilOrder',
  ]) {
    assert.ok(names.has(step), `${step} is in the pushed order's trace`)
  }
  assert.ok(spans.some((s) => serviceOf(s) === 'cloudpay-terminal' && s.name === 'terminal: pay pushed order'), 'the phone continued the trace from PAYMENT_PUSHED')
  assert.equal(summary.pushedOrder.state, 'ORDER_STATE_EFFECTIVE')
  assert.deepEqual(summary.pushedOrder.toldClaimedElsewhere.length, 1)
  const paid = BigInt(summary.pushedOrder.amount.amountMinor)
  assert.equal(BigInt(summary.pushedOrder.balances.payerBefore) - BigInt(summary.pushedOrder.balances.payerAfter), paid, 'the payer paid the order once')
  assert.equal(BigInt(summary.pushedOrder.balances.merchantAfter) - BigInt(summary.pushedOrder.balances.merchantBefore), paid, 'the shop got it once')
})

test('no secret is in any exported span, table or log', async () => {
  for (const secret of Object.values(SECRETS)) assert.deepEqual(await findSecret(t, secret), [], secret)
  assert.ok(!JSON.stringify(received).includes(SECRETS.payerAccount))
})

test('the OTLP receiver gets the same trace over the wire, from every service', () => {
  const order = received.filter((r) => r.span.traceId === summary.traceIds.order)
  assert.ok(order.length >= spansOf(summary.traceIds.order).length, 'every span of the order arrived')
  const five = ['cloudpay-account-management', 'cloudpay-app-service', 'cloudpay-instance-events', 'cloudpay-payment-management', 'cloudpay-payment-platform']
  assert.deepEqual([...new Set(order.map((r) => r.service))].filter((s) => five.includes(s)).sort(), five)
  const fulfil = order.find((r) => r.span.name === 'cloudpay.app.v1.AppService/FulfilOrder')
  assert.equal(fulfil?.span.attributes?.find((a) => a.key === 'cloudpay.order_id')?.value.stringValue, summary.order.orderId)
})

test('cloudpay trace <order id> prints the waterfall of the order from the local span store', async () => {
  const { stdout } = await run(join(ROOT, 'node_modules/.bin/tsx'), ['cli/cloudpay.ts', 'trace', summary.order.orderId], {
    cwd: ROOT,
    env: { ...process.env, CLOUDPAY_HOME: t.config.home },
  })
  assert.match(stdout, new RegExp(`^trace ${summary.traceIds.order} · \\d+ spans · \\d+ services`, 'm'))
  for (const row of ['PaymentPlatformService/Pay', 'outbox payment-result', 'AppService/FulfilOrder', 'instance: buy gems', 'terminal: pay']) assert.match(stdout, new RegExp(row))
  assert.match(stdout, /\|\s*█+\s*\| ok/)
  const byTrace = await run(join(ROOT, 'node_modules/.bin/tsx'), ['cli/cloudpay.ts', 'trace', summary.traceIds.login], {
    cwd: ROOT,
    env: { ...process.env, CLOUDPAY_HOME: t.config.home },
  })
  assert.match(byTrace.stdout, /AccountManagementService\/VerifyLogin/)
})

test('npm run demo -- --json acts out both flows and prints one summary', async () => {
  const home = join(t.config.home, 'demo')
  // Port 0 for every service of the demo's own mesh: a fixed port in the ephemeral range can be taken.
  const ports = Object.fromEntries(SERVICE_NAMES.map((name) => [addressVariable(name), '127.0.0.1:0']))
  // One service's port is held until its mesh logs that it waits for it ("address in use"): that
  // warning must reach stderr, never the stdout that holds the one JSON summary.
  const holder = createNetServer()
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve))
  ports[addressVariable('instance-events')] = `127.0.0.1:${(holder.address() as AddressInfo).port}`
  const demoRun = spawn(join(ROOT, 'node_modules/.bin/tsx'), ['cli/demo.ts', '--json'], {
    cwd: ROOT,
    // Sharing the test mesh's database, so sharing its data key too (as every replica must).
    env: { ...process.env, ...ports, CLOUDPAY_HOME: home, DATABASE_URL: t.fresh.location.databaseUrl ?? '', CLOUDPAY_DATA_KEY: (await readFile(join(t.config.home, 'keys', 'data.key'), 'utf8')).trim() },
    signal: AbortSignal.timeout(120_000),
  })
  let stdout = ''
  let stderr = ''
  // Released once the warning shows on either stream: a warning on stdout fails the stderr assertion, not the bind.
  const release = () => void (/address in use/.test(stdout + stderr) && holder.listening && holder.close())
  demoRun.stdout.on('data', (chunk: Buffer) => ((stdout += chunk.toString()), release()))
  demoRun.stderr.on('data', (chunk: Buffer) => ((stderr += chunk.toString()), release()))
  const [code] = (await once(demoRun, 'close')) as [number | null]
  holder.close()
  assert.equal(code, 0, `the demo failed:\n${stderr.slice(-2000)}`)
  assert.match(stderr, /address in use/)
  const demo = JSON.parse(stdout) as DemoSummary
  assert.equal(demo.login.result, 'LOGIN_STATE_VERIFIED')
  assert.match(demo.login.displayName, /^cloud platform guest \d{6}$/)
  assert.equal(demo.order.state, 'ORDER_STATE_EFFECTIVE')
  assert.equal(demo.pushedOrder.state, 'ORDER_STATE_EFFECTIVE')
  assert.match(demo.pushedOrder.path, /^push/)
  const amount = BigInt(demo.order.amount.amountMinor)
  assert.equal(amount, 2n * (1999n - 200n))
  const pushed = BigInt(demo.pushedOrder.amount.amountMinor)
  assert.ok(pushed > 0n)
  for (const payment of [demo.order, demo.pushedOrder]) {
    const paid = BigInt(payment.amount.amountMinor)
    assert.equal(BigInt(payment.balances.payerBefore) - BigInt(payment.balances.payerAfter), paid, `${payment.path}: the payer paid once`)
    assert.equal(BigInt(payment.balances.merchantAfter) - BigInt(payment.balances.merchantBefore), paid, `${payment.path}: the shop got it once`)
  }
  assert.equal(BigInt(demo.balances.payerBefore) - BigInt(demo.balances.payerAfter), amount + pushed)
  assert.deepEqual(demo.inventory, { 'gem-pack-550': '2', 'gem-pack-100': '1' })
  assert.match(demo.traceIds.login, /^[0-9a-f]{32}$/)
  assert.equal(new Set([demo.traceIds.login, demo.traceIds.order, demo.traceIds.pushedOrder]).size, 3, 'one trace per flow')
  // The offline payment: reserved at provisioning, redeemed once by the shop, refused to the café, the rest returned.
  const offline = demo.offline
  const [allowance, charged] = [BigInt(offline.allowance.amountMinor), BigInt(offline.amount.amountMinor)]
  const { before, provisioned, redeemed, revoked } = offline.balances
  assert.equal(BigInt(before.payer) - BigInt(provisioned.payer), allowance, 'the allowance left the payer at provisioning')
  assert.equal(BigInt(provisioned.reserve) - BigInt(before.reserve), allowance, 'into the offline reserve')
  assert.equal(BigInt(redeemed.shop) - BigInt(provisioned.shop), charged, 'the shop got the code once')
  assert.equal(BigInt(provisioned.reserve) - BigInt(redeemed.reserve), charged, 'out of the reserve')
  assert.deepEqual([redeemed.cafe, offline.refused.couldOpen, offline.refused.forwardedPlaintext], [provisioned.cafe, false, 'PERMISSION_DENIED OFFLINE_PAYEE_MISMATCH'])
  assert.equal(BigInt(revoked.payer) - BigInt(redeemed.payer), allowance - charged, 'the rest went back to the payer')
  assert.equal(revoked.reserve, before.reserve)
})
