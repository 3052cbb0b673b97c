// The two flows as clients drive them, for load, through the SDK: each worker owns a device, a
// terminal and a payer account, and follows its device's pipe to learn when its order took effect.
import { randomUUID } from 'node:crypto'
import { unaryCall } from '../services/runtime/client.ts'
import { flows, type MeshClients, OPERATOR } from '../cli/demo/steps.ts'
import { instanceSdk } from '../sdk/instance.ts'
import { terminalSdk } from '../sdk/terminal.ts'

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

/** `openingBalanceMinor`: each worker's payer account; a mesh started elsewhere caps it (CLOUDPAY_OPENING_BALANCE_MAX_MINOR). */
export async function worker(clients: MeshClients, index: number, openingBalanceMinor = 1_000_000_000n): Promise<Worker> {
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
    openingBalance: { currencyCode: 'USD', amountMinor: openingBalanceMinor },
  })
  // Each device and terminal acts through the SDK, as an integrating app would.
  const instance = instanceSdk(clients, device)
  const terminal = terminalSdk(clients, phone)
  await terminal.bindPaymentAccount(device, 'alphapay', payer, true)
  // The instance's pipe, followed once: order completions arrive there.
  await instance.events()
  return {
    login: async () => {
      await step.logIn(device, phone, password)
    },
    order: async () => {
      const { order } = await instance.order(session.sessionToken, 'gem-pack-100', 1)
      const fetched = await terminal.fetchOrder(device)
      const { serialNumber } = await terminal.prepay(device, fetched.orderId)
      await terminal.pay('alphapay', serialNumber, PAYMENT_PASSWORD)
      const outcome = await instance.waitForOutcome(order.orderId, { signal: AbortSignal.timeout(30_000) })
      if (outcome !== 'effective') throw new Error(`order ${order.orderId} ${outcome}`)
    },
    close: () => {
      instance.close()
      terminal.close()
    },
  }
}
