// The demo: operator, instance and terminal act out both flows against a running mesh, narrating
// who sends what to whom. The instance and the terminal follow the pipe and continue the trace
// each event carries, so each flow is one trace across every service.
import { randomBytes, randomUUID } from 'node:crypto'
import { context, type Context, SpanKind, type Tracer, trace } from '@opentelemetry/api'
import { status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { type Event, EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { contextFromTraceParent } from '../../services/runtime/trace-context.ts'
import type { ClientOf } from '../../services/runtime/peers.ts'
import { flows, instance, type MeshClients, OPERATOR, terminal } from './steps.ts'

export interface DemoSummary {
  login: { result: string; loginId: string; appAccountId: string; displayName: string; created: boolean; traceId: string }
  order: { orderId: string; item: string; state: string; amount: { currencyCode: string; amountMinor: string }; traceId: string }
  balances: { payerBefore: string; payerAfter: string; merchantBefore: string; merchantAfter: string }
  inventory: Record<string, string>
  traceIds: { login: string; order: string }
}

const PLATFORM = 'alphapay'
const MERCHANT_ACCOUNT = 'SHOPALPHA0001'

/**
 * Waits on a device's Notify stream for an event (the instance and terminal are woken this way).
 * A stream that breaks (its InstanceEvents replica gone) is opened again after the last event
 * seen, as a real device does: nothing is missed, nothing repeats.
 */
function follow(clients: MeshClients, who: ReturnType<typeof instance>, deviceId: string) {
  const seen: Event[] = []
  const waiters: (() => void)[] = []
  let stream: { cancel(): void } | undefined
  let closed = false
  const wake = (): void => {
    for (const w of waiters.splice(0)) w()
  }
  const subscribe = (pipe: ClientOf<'instance-events'>, attempt: number): void => {
    const afterSequence = seen.length > 0 ? seen[seen.length - 1]!.sequence : 0n
    const call = pipe.notify({ deviceId, afterSequence })
    call.on('data', (m: { event?: Event }) => {
      attempt = 0
      if (m.event && m.event.sequence > (seen[seen.length - 1]?.sequence ?? 0n)) seen.push(m.event)
      wake()
    })
    // 'status' ends every stream (an error, or a server that stopped and said OK); 'error' is its echo.
    call.on('error', () => undefined)
    call.on('status', (e: { code: number }) => {
      if (closed || e.code === Status.CANCELLED) return
      wake()
      // Back off with jitter, so a failover does not bring every follower back at once.
      const delay = Math.min(2_000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2)
      setTimeout(() => closed || subscribe(pipe, attempt + 1), delay)
    })
    stream = call
  }
  const ready = clients.client('instance-events', who).then((pipe) => subscribe(pipe, 0))
  return {
    async next(kind: EventKind, subjectId: string, timeoutMs = 15_000): Promise<Event> {
      await ready
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const found = seen.find((e) => e.kind === kind && e.subjectId === subjectId)
        if (found) return found
        if (Date.now() > deadline) throw new Error(`no ${EventKind[kind]} for ${subjectId} within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          waiters.push(resolve)
          setTimeout(resolve, 250)
        })
      }
    },
    close: () => {
      closed = true
      stream?.cancel()
    },
  }
}

/** The person's secrets; fresh random ones unless a test passes its own (to search for them afterwards). */
export interface DemoSecrets {
  readonly password: string
  readonly payerAccount: string
  readonly paymentPassword: string
}

export async function runDemo(clients: MeshClients, tracerFor: (party: string) => Tracer, say: (line: string) => void, secrets?: DemoSecrets): Promise<DemoSummary> {
  const suffix = randomBytes(3).toString('hex')
  const accountId = `demo-${suffix}`
  const password = secrets?.password ?? `demo-password-${randomBytes(6).toString('hex')}`
  const device = `cg-${suffix}`
  const phone = `phone-${suffix}`
  const payer = secrets?.payerAccount ?? `DEMO${randomBytes(6).toString('hex').toUpperCase()}`
  const paymentPassword = secrets?.paymentPassword ?? `pay-${randomBytes(4).toString('hex')}`
  const step = flows(clients, OPERATOR)
  const instanceTracer = tracerFor('instance')
  const terminalTracer = tracerFor('terminal')
  const under = <T>(tracer: Tracer, name: string, parent: Context, work: () => Promise<T>): Promise<T> =>
    tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL, attributes: { 'cloudpay.device_id': device } }, parent, async (span) => {
      try {
        return await work()
      } finally {
        span.end()
      }
    })

  say(`── 0. The operator registers cloud account ${accountId}, rents instance ${device} to it and connects phone ${phone}.`)
  await step.setUp(accountId, password, device, phone)
  const platformOps = await clients.client('payment-platform', OPERATOR)
  await unaryCall(platformOps, 'createMerchantAccount', {
    requestId: randomUUID(),
    platformId: PLATFORM,
    merchantId: 'demo-shop',
    collectionAccount: MERCHANT_ACCOUNT,
    currencyCode: 'USD',
  }).catch((error: { code?: number }) => {
    if (error.code !== Status.ALREADY_EXISTS) throw error
  })
  await unaryCall(platformOps, 'createPayerAccount', {
    requestId: randomUUID(),
    platformId: PLATFORM,
    payerAccount: payer,
    paymentPassword,
    openingBalance: { currencyCode: 'USD', amountMinor: 10_000n },
  })
  say(`   The person has a payer account on ${PLATFORM} (balance 100.00 USD) and binds it from the phone; the instance never sees it.`)
  await unaryCall(await clients.client('account-management', terminal(phone)), 'bindPaymentAccount', {
    requestId: randomUUID(),
    deviceId: device,
    platformId: PLATFORM,
    payerAccount: payer,
    makeDefault: true,
  })

  const instanceEvents = follow(clients, instance(device), device)
  const phoneEvents = follow(clients, terminal(phone), device)
  try {
    // ── Login ──
    say(`── 1. Login. The instance starts a login and publishes LOGIN_REQUESTED on the pipe (no credential in it).`)
    const loginRoot = instanceTracer.startSpan('instance: log in', { attributes: { 'cloudpay.device_id': device } })
    const loginContext = trace.setSpan(context.active(), loginRoot)
    const login = await context.with(loginContext, () => step.startLogin(device))
    say(`   The instance shows binding code ${login.bindingCode} on screen; login id ${login.loginId}.`)
    const requested = await phoneEvents.next(EventKind.EVENT_KIND_LOGIN_REQUESTED, login.loginId)
    say(`── 2. The phone sees LOGIN_REQUESTED, the person types the password and code; the phone sends them to AccountManagement only.`)
    const verified = await under(terminalTracer, 'terminal: confirm login', contextFromTraceParent(requested.traceParent), () =>
      step.verify(device, phone, login.loginId, login.bindingCode, password),
    )
    say(`   AccountManagement finds the account from the device, verifies: ${LoginState[verified.state]}.`)
    const loginVerified = await instanceEvents.next(EventKind.EVENT_KIND_LOGIN_VERIFIED, login.loginId)
    say(`── 3. The instance is woken by LOGIN_VERIFIED and redeems the login for a single-use token.`)
    const session = await under(instanceTracer, 'instance: enter the app', contextFromTraceParent(loginVerified.traceParent), async () => {
      const { loginToken } = await step.redeem(device, login.loginId)
      say(`── 4. The instance presents the token to AppService, which validates it with AccountManagement.`)
      return step.appLogin(device, loginToken)
    })
    loginRoot.end()
    say(`   Logged in as "${session.appAccount!.displayName}" (${session.appAccount!.appAccountId}, ${session.created ? 'created now' : 'existing'}).`)

    // ── Payment ──
    const ops = await clients.client('payment-platform', OPERATOR)
    const balanceOf = async (account: string) => (await unaryCall(ops, 'getAccountBalance', { platformId: PLATFORM, account })).account!.balance!.amountMinor
    const payerBefore = await balanceOf(payer)
    const merchantBefore = await balanceOf(MERCHANT_ACCOUNT)
    say(`── 5. Payment. The instance orders 2 x Gem pack (550) at AppService and submits the order to PaymentManagement.`)
    const orderRoot = instanceTracer.startSpan('instance: buy gems', { attributes: { 'cloudpay.device_id': device } })
    const orderContext = trace.setSpan(context.active(), orderRoot)
    const order = await context.with(orderContext, async () => {
      const app = await clients.client('app-service', instance(device))
      const { order: appOrder } = await unaryCall(app, 'createOrder', {
        requestId: randomUUID(),
        deviceId: device,
        sessionToken: session.sessionToken,
        itemId: 'gem-pack-550',
        quantity: 2,
      })
      const pm = await clients.client('payment-management', instance(device))
      const { order: submitted } = await unaryCall(pm, 'submitOrder', { requestId: randomUUID(), deviceId: device, appOrderId: appOrder!.appOrderId })
      const pipe = await clients.client('instance-events', instance(device))
      await unaryCall(pipe, 'publish', { requestId: randomUUID(), deviceId: device, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId: submitted!.orderId })
      return submitted!
    })
    orderRoot.end()
    say(
      `   Order ${order.orderId}: ${Number(order.amount!.amountMinor) / 100} ${order.amount!.currencyCode} (AppService's price, not the instance's). PAYMENT_REQUESTED carries only the order id.`,
    )
    const paymentRequested = await phoneEvents.next(EventKind.EVENT_KIND_PAYMENT_REQUESTED, order.orderId)
    say(`── 6. The phone fetches the order, the person confirms and pays with the payment password at ${PLATFORM} directly.`)
    await under(terminalTracer, 'terminal: pay', contextFromTraceParent(paymentRequested.traceParent), async () => {
      const pm = await clients.client('payment-management', terminal(phone))
      const { order: fetched } = await unaryCall(pm, 'fetchOrder', { requestId: randomUUID(), deviceId: device })
      const { serialNumber } = await unaryCall(pm, 'prepayOrder', { requestId: randomUUID(), deviceId: device, orderId: fetched!.orderId, bindingId: '' })
      say(`   Prepay sent to ${PLATFORM}: transaction ${serialNumber}.`)
      const platform = await clients.client('payment-platform', terminal(phone))
      await unaryCall(platform, 'pay', { requestId: randomUUID(), platformId: PLATFORM, serialNumber, paymentPassword })
    })
    say(`── 7. The platform moves the money and notifies PaymentManagement, which hands the order to AppService.`)
    const effective = await instanceEvents.next(EventKind.EVENT_KIND_ORDER_EFFECTIVE, order.orderId)
    await under(instanceTracer, 'instance: show the gems', contextFromTraceParent(effective.traceParent), async () => undefined)
    const pmOps = await clients.client('payment-management', OPERATOR)
    const final = (await unaryCall(pmOps, 'getOrder', { orderId: order.orderId })).order!
    const app = await clients.client('app-service', instance(device))
    const { items } = await unaryCall(app, 'listInventory', { deviceId: device, sessionToken: session.sessionToken, pageSize: 0, pageToken: '' })
    const payerAfter = await balanceOf(payer)
    const merchantAfter = await balanceOf(MERCHANT_ACCOUNT)
    say(`   The instance sees ORDER_EFFECTIVE. Order ${OrderState[final.state]}; inventory: ${items.map((i) => `${i.quantity} x ${i.itemId}`).join(', ')}.`)
    say(`   Payer ${Number(payerBefore) / 100} -> ${Number(payerAfter) / 100} USD; shop ${Number(merchantBefore) / 100} -> ${Number(merchantAfter) / 100} USD.`)
    say(`   Never left the phone: the password, the payment password, the payer account.`)
    const loginTraceId = loginRoot.spanContext().traceId
    const orderTraceId = orderRoot.spanContext().traceId
    return {
      login: {
        result: LoginState[verified.state],
        loginId: login.loginId,
        appAccountId: session.appAccount!.appAccountId,
        displayName: session.appAccount!.displayName,
        created: session.created,
        traceId: loginTraceId,
      },
      order: {
        orderId: order.orderId,
        item: 'gem-pack-550 x 2',
        state: OrderState[final.state],
        amount: { currencyCode: final.amount!.currencyCode, amountMinor: final.amount!.amountMinor.toString() },
        traceId: orderTraceId,
      },
      balances: { payerBefore: payerBefore.toString(), payerAfter: payerAfter.toString(), merchantBefore: merchantBefore.toString(), merchantAfter: merchantAfter.toString() },
      inventory: Object.fromEntries(items.map((i) => [i.itemId, i.quantity.toString()])),
      traceIds: { login: loginTraceId, order: orderTraceId },
    }
  } finally {
    instanceEvents.close()
    phoneEvents.close()
  }
}
