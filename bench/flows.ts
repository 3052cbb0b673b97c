// The two flows as clients drive them, for load: each worker owns a device, a terminal and a
// payer account, and follows its device's pipe to learn when its order took effect.
import { randomUUID } from 'node:crypto'
import { EventKind, type Event } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../services/runtime/client.ts'
import { flows, instance, type MeshClients, OPERATOR, terminal } from '../cli/demo/steps.ts'

export interface Worker {
  login(): Promise<void>
  order(): Promise<void>
  close(): void
}

const PAYMENT_PASSWORD = 'bench-payment-password'

export async function setUpMerchant(clients: MeshClients): Promise<void> {
  const platform = await clients.client('payment-platform', OPERATOR)
  await unaryCall(platform, 'createMerchantAccount', {
    requestId: randomUUID(),
    platformId: 'alphapay',
    merchantId: 'demo-shop',
    collectionAccount: 'SHOPALPHA0001',
    currencyCode: 'USD',
  })
}

export async function worker(clients: MeshClients, index: number): Promise<Worker> {
  const tag = `${index}-${randomUUID().slice(0, 6)}`
  const device = `bench-dev-${tag}`
  const phone = `bench-phone-${tag}`
  const password = `bench-password-${tag}`
  const payer = `BENCH${tag.replace(/-/g, '').toUpperCase()}`.slice(0, 34).padEnd(8, '0')
  const step = flows(clients, OPERATOR)
  await step.setUp(`bench-${tag}`, password, device, phone)
  const session = await step.logIn(device, phone, password)
  const platformOps = await clients.client('payment-platform', OPERATOR)
  await unaryCall(platformOps, 'createPayerAccount', {
    requestId: randomUUID(),
    platformId: 'alphapay',
    payerAccount: payer,
    paymentPassword: PAYMENT_PASSWORD,
    openingBalance: { currencyCode: 'USD', amountMinor: 1_000_000_000n },
  })
  await unaryCall(await clients.client('account-management', terminal(phone)), 'bindPaymentAccount', {
    requestId: randomUUID(),
    deviceId: device,
    platformId: 'alphapay',
    payerAccount: payer,
    makeDefault: true,
  })

  // The instance's pipe: order completions arrive here.
  const waiting = new Map<string, () => void>()
  const pipe = await clients.client('instance-events', instance(device))
  const stream = pipe.notify({ deviceId: device, afterSequence: 0n })
  stream.on('data', (m: { event?: Event }) => {
    if (m.event?.kind === EventKind.EVENT_KIND_ORDER_EFFECTIVE) waiting.get(m.event.subjectId)?.()
  })
  stream.on('error', () => undefined)

  const app = await clients.client('app-service', instance(device))
  const pmInstance = await clients.client('payment-management', instance(device))
  const pmTerminal = await clients.client('payment-management', terminal(phone))
  const platform = await clients.client('payment-platform', terminal(phone))
  return {
    login: async () => {
      await step.logIn(device, phone, password)
    },
    order: async () => {
      const { order: appOrder } = await unaryCall(app, 'createOrder', {
        requestId: randomUUID(),
        deviceId: device,
        sessionToken: session.sessionToken,
        itemId: 'gem-pack-100',
        quantity: 1,
      })
      const { order } = await unaryCall(pmInstance, 'submitOrder', { requestId: randomUUID(), deviceId: device, appOrderId: appOrder!.appOrderId })
      const effective = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`order ${order!.orderId} did not take effect in 30 s`)), 30_000)
        waiting.set(order!.orderId, () => {
          clearTimeout(timer)
          waiting.delete(order!.orderId)
          resolve()
        })
      })
      await unaryCall(pipe, 'publish', { requestId: randomUUID(), deviceId: device, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId: order!.orderId })
      const { order: fetched } = await unaryCall(pmTerminal, 'fetchOrder', { requestId: randomUUID(), deviceId: device })
      const { serialNumber } = await unaryCall(pmTerminal, 'prepayOrder', { requestId: randomUUID(), deviceId: device, orderId: fetched!.orderId, bindingId: '' })
      await unaryCall(platform, 'pay', { requestId: randomUUID(), platformId: 'alphapay', serialNumber, paymentPassword: PAYMENT_PASSWORD })
      await effective
    },
    close: () => stream.cancel(),
  }
}
