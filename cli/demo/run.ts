// The demo: operator, instance and terminals act out both flows against a running mesh, narrating
// who sends what to whom, each device through its SDK (sdk/instance.ts, sdk/terminal.ts). The
// first payment goes through an operator-opened channel; the second is pushed to the account's
// enrolled terminals, claimed on the phone by a tap and paid through PaymentManagement's sealed
// relay, while the tablet is told it was claimed elsewhere. The devices continue the trace each
// event carries, so each flow is one trace across every service.
import { randomBytes, randomUUID } from 'node:crypto'
import { context, type Context, SpanKind, type Tracer, trace } from '@opentelemetry/api'
import { status as Status } from '@grpc/grpc-js'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { type Event, EventKind, type TerminalEvent } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { OrderState } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { instanceSdk } from '../../sdk/instance.ts'
import { terminalSdk } from '../../sdk/terminal.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { contextFromTraceParent } from '../../services/runtime/trace-context.ts'
import { type OfflineDemo, runOfflineDemo } from './offline.ts'
import { flows, type MeshClients, OPERATOR } from './steps.ts'

export interface DemoPayment {
  orderId: string
  item: string
  state: string
  amount: { currencyCode: string; amountMinor: string }
  /** How the terminal got the order and paid it. */
  path: 'channel: fetched, paid at the platform' | 'push: claimed by a tap, paid through the relay'
  traceId: string
  balances: { payerBefore: string; payerAfter: string; merchantBefore: string; merchantAfter: string }
}

export interface DemoSummary {
  login: { result: string; loginId: string; appAccountId: string; displayName: string; created: boolean; traceId: string }
  /** The first payment (through the channel). */
  order: DemoPayment
  /** The second payment: pushed to both enrolled terminals, claimed on the phone, the tablet told. */
  pushedOrder: DemoPayment & { claimedBy: string; toldClaimedElsewhere: string[] }
  balances: { payerBefore: string; payerAfter: string; merchantBefore: string; merchantAfter: string }
  inventory: Record<string, string>
  traceIds: { login: string; order: string; pushedOrder: string }
  /** The third payment: an offline code sealed to the shop's counter; the café refused (cli/demo/offline.ts). */
  offline: OfflineDemo
}

const PLATFORM = 'alphapay'
const MERCHANT_ACCOUNT = 'SHOPALPHA0001'
/** How long the demo waits for any one event before it gives up. */
const EVENT_WAIT_MS = 20_000

/** The person's secrets; fresh random ones unless a test passes its own (to search for them afterwards). */
export interface DemoSecrets {
  readonly password: string
  readonly payerAccount: string
  readonly paymentPassword: string
}

export interface DemoOptions {
  /** The person's secrets (a test passes its own, to search for them afterwards). */
  readonly secrets?: DemoSecrets
  /** The mesh CA the terminals verify the platform's sealing keys against. */
  readonly caFile: string
}

export async function runDemo(clients: MeshClients, tracerFor: (party: string) => Tracer, say: (line: string) => void, options: DemoOptions): Promise<DemoSummary> {
  const { secrets, caFile } = options
  const suffix = randomBytes(3).toString('hex')
  const accountId = `demo-${suffix}`
  const password = secrets?.password ?? `demo-password-${randomBytes(6).toString('hex')}`
  const device = `cg-${suffix}`
  const phoneId = `phone-${suffix}`
  const tabletId = `tablet-${suffix}`
  const payer = secrets?.payerAccount ?? `DEMO${randomBytes(6).toString('hex').toUpperCase()}`
  const paymentPassword = secrets?.paymentPassword ?? `pay-${randomBytes(4).toString('hex')}`
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
  /** A root span of the instance's: the flow's trace. */
  const flow = async <T>(name: string, work: () => Promise<T>): Promise<{ result: T; traceId: string }> => {
    const root = instanceTracer.startSpan(name, { attributes: { 'cloudpay.device_id': device } })
    try {
      return { result: await context.with(trace.setSpan(context.active(), root), work), traceId: root.spanContext().traceId }
    } finally {
      root.end()
    }
  }
  const waiting = { signal: AbortSignal.timeout(EVENT_WAIT_MS * 6) }
  const on = (kind: EventKind, subjectId: string) => (e: Event | TerminalEvent) => e.kind === kind && e.subjectId === subjectId

  say(`── 0. The operator registers cloud account ${accountId}, rents instance ${device} to it and connects phone ${phoneId}.`)
  await flows(clients, OPERATOR).setUp(accountId, password, device, phoneId)
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
  const instance = instanceSdk(clients, device)
  const phone = terminalSdk(clients, phoneId)
  const tablet = terminalSdk(clients, tabletId)
  say(`   The person has a payer account on ${PLATFORM} (balance 100.00 USD) and binds it from the phone; the instance never sees it.`)
  await phone.bindPaymentAccount(device, PLATFORM, payer, true)
  const balanceOf = async (account: string) => (await unaryCall(platformOps, 'getAccountBalance', { platformId: PLATFORM, account })).account!.balance!.amountMinor
  const balances = async () => ({ payer: await balanceOf(payer), merchant: await balanceOf(MERCHANT_ACCOUNT) })
  const payment = async (orderId: string, item: string, path: DemoPayment['path'], traceId: string, before: { payer: bigint; merchant: bigint }): Promise<DemoPayment> => {
    const final = (await unaryCall(await clients.client('payment-management', OPERATOR), 'getOrder', { orderId })).order!
    const now = await balances()
    say(`   Order ${OrderState[final.state]}. Payer ${Number(before.payer) / 100} -> ${Number(now.payer) / 100} USD; shop ${Number(before.merchant) / 100} -> ${Number(now.merchant) / 100} USD.`)
    return {
      orderId,
      item,
      state: OrderState[final.state],
      amount: { currencyCode: final.amount!.currencyCode, amountMinor: final.amount!.amountMinor.toString() },
      path,
      traceId,
      balances: { payerBefore: before.payer.toString(), payerAfter: now.payer.toString(), merchantBefore: before.merchant.toString(), merchantAfter: now.merchant.toString() },
    }
  }

  try {
    // ── Login ──
    say(`── 1. Login. The instance starts a login and publishes LOGIN_REQUESTED on the pipe (no credential in it).`)
    const { result: loggedIn, traceId: loginTraceId } = await flow('instance: log in', async () => {
      const login = await instance.startLogin()
      say(`   The instance shows binding code ${login.bindingCode} on screen; login id ${login.loginId}.`)
      const requested = await phone.nextEvent(device, on(EventKind.EVENT_KIND_LOGIN_REQUESTED, login.loginId), waiting)
      say(`── 2. The phone sees LOGIN_REQUESTED, the person types the password and code; the phone sends them to AccountManagement only.`)
      const verified = await under(terminalTracer, 'terminal: confirm login', contextFromTraceParent(requested.traceParent), () =>
        phone.approveLogin(device, login.loginId, login.bindingCode, password),
      )
      say(`   AccountManagement finds the account from the device, verifies: ${LoginState[verified.state]}.`)
      const outcome = await instance.waitForLogin(login.loginId, waiting)
      if (outcome !== 'verified') throw new Error(`login ${login.loginId} was ${outcome}`)
      say(`── 3. The instance is woken by LOGIN_VERIFIED, redeems the login for a single-use token and`)
      say(`── 4. presents it to AppService, which validates it with AccountManagement.`)
      const session = await instance.logIn(login.loginId)
      return { login, verified, session }
    })
    const { login, verified, session } = loggedIn
    say(`   Logged in as "${session.appAccount!.displayName}" (${session.appAccount!.appAccountId}, ${session.created ? 'created now' : 'existing'}).`)

    // ── Payment through the channel ──
    const before = await balances()
    say(`── 5. Payment. The instance orders 2 x Gem pack (550) at AppService and submits the order to PaymentManagement.`)
    const first = await flow('instance: buy gems', async () => {
      const { order } = await instance.order(session.sessionToken, 'gem-pack-550', 2)
      say(`   Order ${order.orderId}: ${Number(order.amount!.amountMinor) / 100} ${order.amount!.currencyCode} (AppService's price, not the instance's). PAYMENT_REQUESTED carries only the order id.`)
      const requested = await phone.nextEvent(device, on(EventKind.EVENT_KIND_PAYMENT_REQUESTED, order.orderId), waiting)
      say(`── 6. The phone fetches the order, the person confirms and pays with the payment password at ${PLATFORM} directly.`)
      await under(terminalTracer, 'terminal: pay', contextFromTraceParent(requested.traceParent), async () => {
        const fetched = await phone.fetchOrder(device)
        const { serialNumber } = await phone.prepay(device, fetched.orderId)
        say(`   Prepay sent to ${PLATFORM}: transaction ${serialNumber}.`)
        await phone.pay(PLATFORM, serialNumber, paymentPassword)
      })
      say(`── 7. The platform moves the money and notifies PaymentManagement, which hands the order to AppService.`)
      const outcome = await instance.waitForOutcome(order.orderId, waiting)
      if (outcome !== 'effective') throw new Error(`order ${order.orderId} ${outcome}`)
      await under(instanceTracer, 'instance: show the gems', context.active(), async () => undefined)
      return order.orderId
    })
    say(`   The instance sees ORDER_EFFECTIVE.`)
    const channelPayment = await payment(first.result, 'gem-pack-550 x 2', 'channel: fetched, paid at the platform', first.traceId, before)

    // ── Payment pushed to the account's terminals ──
    say(`── 8. The person enrols the phone and a tablet in ${accountId} (the account password, once each; no channel).`)
    await phone.enroll(accountId, password, 'the phone')
    await tablet.enroll(accountId, password, 'the tablet')
    const beforePush = await balances()
    say(`── 9. The instance orders 1 x Gem pack (100); PaymentManagement pushes PAYMENT_PUSHED to both terminals' own streams.`)
    const pushed = await flow('instance: buy more gems', async () => {
      const { order } = await instance.order(session.sessionToken, 'gem-pack-100', 1)
      const [onPhone] = await Promise.all([
        phone.nextPush(on(EventKind.EVENT_KIND_PAYMENT_PUSHED, order.orderId), waiting),
        tablet.nextPush(on(EventKind.EVENT_KIND_PAYMENT_PUSHED, order.orderId), waiting),
      ])
      say(`   Both terminals got PAYMENT_PUSHED for ${order.orderId} (ids only, no channel needed).`)
      say(`── 10. The person taps the notification on the phone: ClaimOrder wins it; the tablet is told ORDER_CLAIMED_ELSEWHERE.`)
      await under(terminalTracer, 'terminal: pay pushed order', contextFromTraceParent(onPhone.traceParent), async () => {
        const claimed = await phone.claimOrder(order.orderId, 'tap')
        const prepaid = await phone.prepay(device, claimed.orderId)
        say(`── 11. The phone seals the payment password to ${PLATFORM}'s key (verified against the mesh CA) and pays through PaymentManagement, which cannot read it.`)
        await phone.payThroughRelay({ deviceId: device, order: claimed, platformId: prepaid.platformId, serialNumber: prepaid.serialNumber }, paymentPassword, caFile)
      })
      await tablet.nextPush(on(EventKind.EVENT_KIND_ORDER_CLAIMED_ELSEWHERE, order.orderId), waiting)
      const outcome = await instance.waitForOutcome(order.orderId, waiting)
      if (outcome !== 'effective') throw new Error(`order ${order.orderId} ${outcome}`)
      return order.orderId
    })
    say(`   The tablet saw ORDER_CLAIMED_ELSEWHERE; the instance sees ORDER_EFFECTIVE.`)
    const pushedPayment = await payment(pushed.result, 'gem-pack-100 x 1', 'push: claimed by a tap, paid through the relay', pushed.traceId, beforePush)

    const offline = await runOfflineDemo(clients, say, { phoneId, payerAccount: payer, paymentPassword, caFile })
    const app = await clients.client('app-service', { role: 'instance', id: device })
    const { items } = await unaryCall(app, 'listInventory', { deviceId: device, sessionToken: session.sessionToken, pageSize: 0, pageToken: '' })
    say(`   Inventory: ${items.map((i) => `${i.quantity} x ${i.itemId}`).join(', ')}.`)
    say(`   Never left the phone: the password, the payment password, the payer account.`)
    return {
      login: {
        result: LoginState[verified.state],
        loginId: login.loginId,
        appAccountId: session.appAccount!.appAccountId,
        displayName: session.appAccount!.displayName,
        created: session.created,
        traceId: loginTraceId,
      },
      order: channelPayment,
      pushedOrder: { ...pushedPayment, claimedBy: phoneId, toldClaimedElsewhere: [tabletId] },
      balances: {
        payerBefore: before.payer.toString(),
        payerAfter: pushedPayment.balances.payerAfter,
        merchantBefore: before.merchant.toString(),
        merchantAfter: pushedPayment.balances.merchantAfter,
      },
      inventory: Object.fromEntries(items.map((i) => [i.itemId, i.quantity.toString()])),
      traceIds: { login: loginTraceId, order: first.traceId, pushedOrder: pushed.traceId },
      offline,
    }
  } finally {
    instance.close()
    phone.close()
    tablet.close()
  }
}
