// The parties payment tests start from: the shop's collection accounts on both platforms, and a
// logged-in person (cloud account, instance, channel terminal) with payer accounts bound on both.
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { flows, instance, OPERATOR, terminal } from '../../cli/demo/steps.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { newRequestId } from './grpc.ts'
import type { TestMesh } from './mesh.ts'

/** The shop collects at SHOPALPHA0001 on alphapay and SHOPBETA0001 on betapay. */
export async function createShop(t: TestMesh): Promise<void> {
  const platform = await t.client('payment-platform', OPERATOR)
  for (const [platformId, collectionAccount] of [
    ['alphapay', 'SHOPALPHA0001'],
    ['betapay', 'SHOPBETA0001'],
  ] as const) {
    await unaryCall(platform, 'createMerchantAccount', { requestId: newRequestId(), platformId, merchantId: 'demo-shop', collectionAccount, currencyCode: 'USD' })
  }
}

export interface PersonSpec {
  /** Names the person's ids: device `<tag>-dev-<n>`, phone `<tag>-phone-<n>`. */
  readonly device: string
  readonly phone: string
  readonly accountId: string
  readonly password: string
  /** Payer account numbers on alphapay and betapay, both with this payment password. */
  readonly payers: { readonly alpha: string; readonly beta: string }
  readonly paymentPassword: string
  readonly balances: { readonly alpha: bigint; readonly beta: bigint }
}

/** A logged-in person with payer accounts on both platforms, both bound (neither made default explicitly). */
export async function personWithPayers(t: TestMesh, spec: PersonSpec) {
  const { device, phone } = spec
  const f = flows(t, OPERATOR)
  await f.setUp(spec.accountId, spec.password, device, phone)
  const session = await f.logIn(device, phone, spec.password)
  const platformOps = await t.client('payment-platform', OPERATOR)
  for (const [platformId, payerAccount, amountMinor] of [
    ['alphapay', spec.payers.alpha, spec.balances.alpha],
    ['betapay', spec.payers.beta, spec.balances.beta],
  ] as const) {
    await unaryCall(platformOps, 'createPayerAccount', { requestId: newRequestId(), platformId, payerAccount, paymentPassword: spec.paymentPassword, openingBalance: { currencyCode: 'USD', amountMinor } })
  }
  const accounts = await t.client('account-management', terminal(phone))
  const bind = async (platformId: string, payerAccount: string) =>
    (await unaryCall(accounts, 'bindPaymentAccount', { requestId: newRequestId(), deviceId: device, platformId, payerAccount, makeDefault: false })).binding!
  const alphaBinding = await bind('alphapay', spec.payers.alpha)
  const betaBinding = await bind('betapay', spec.payers.beta)
  return { device, phone, session, alpha: spec.payers.alpha, beta: spec.payers.beta, alphaBinding, betaBinding }
}
export type Person = Awaited<ReturnType<typeof personWithPayers>>

/** Payment steps 1-2: the instance orders at the application, submits the order, asks on the pipe. */
export async function submitOrder(t: TestMesh, p: Pick<Person, 'device' | 'session'>, itemId: string, quantity: number) {
  const app = await t.client('app-service', instance(p.device))
  const { order: appOrder } = await unaryCall(app, 'createOrder', { requestId: newRequestId(), deviceId: p.device, sessionToken: p.session.sessionToken, itemId, quantity })
  const pm = await t.client('payment-management', instance(p.device))
  const { order: submitted } = await unaryCall(pm, 'submitOrder', { requestId: newRequestId(), deviceId: p.device, appOrderId: appOrder!.appOrderId })
  const pipe = await t.client('instance-events', instance(p.device))
  await unaryCall(pipe, 'publish', { requestId: newRequestId(), deviceId: p.device, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId: submitted!.orderId })
  return { appOrder: appOrder!, order: submitted! }
}
