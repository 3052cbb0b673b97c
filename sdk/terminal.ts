// The terminal side of cloudpay in one typed call per step: follow a device, approve a login,
// fetch an order, prepay it, and pay at the platform directly or through PaymentManagement's
// relay (the credentials sealed on the terminal for the platform alone).
import { readFile } from 'node:fs/promises'
import type { Login } from '../gen/cloudpay/account/v1/account_management_service.ts'
import type { Event } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import type { Order, PrepayOrderResponse } from '../gen/cloudpay/payment/v1/payment_management_service.ts'
import type { Transaction } from '../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { Identity } from '../services/runtime/identity.ts'
import { sealCredentials, sealingAad, verifySealingKeys } from '../services/runtime/sealed-credentials.ts'
import { callStep, CloudpayCallError, type MeshClients, type StepOptions, waitForEvent } from './calls.ts'

export { CloudpayCallError }

export interface TerminalSdk {
  /** Waits on a connected device's pipe for the first event `match` picks (resuming across breaks). */
  nextEvent(deviceId: string, match: (event: Event) => boolean, options?: StepOptions & { afterSequence?: bigint }): Promise<Event>
  /** Sends what the person typed (password, binding code) to AccountManagement only. */
  approveLogin(deviceId: string, loginId: string, bindingCode: string, password: string, options?: StepOptions): Promise<Login>
  /** The device's earliest order not fetched yet. */
  fetchOrder(deviceId: string, options?: StepOptions): Promise<Order>
  /** Sends the order to the chosen (or default) platform: its serial number to pay. */
  prepay(deviceId: string, orderId: string, bindingId?: string, options?: StepOptions): Promise<PrepayOrderResponse>
  /** Pays at the platform directly with the payment password. */
  pay(platformId: string, serialNumber: string, paymentPassword: string, options?: StepOptions): Promise<Transaction>
  /**
   * Pays through PaymentManagement: the platform's sealing keys are verified against the mesh CA
   * (`caFile`), the password sealed to the newest, and only the sealed bytes leave the terminal.
   */
  payThroughRelay(prepaid: { deviceId: string; order: Order; platformId: string; serialNumber: string }, paymentPassword: string, caFile: string, options?: StepOptions): Promise<Order>
}

/** The SDK of the terminal with this id, over clients authenticated as that terminal. */
export function terminalSdk(clients: MeshClients, terminalId: string): TerminalSdk {
  const me: Identity = { role: 'terminal', id: terminalId }
  return {
    async nextEvent(deviceId, match, options = {}) {
      return waitForEvent(await clients.client('instance-events', me), deviceId, match, options)
    },
    async approveLogin(deviceId, loginId, bindingCode, password, options) {
      const accounts = await clients.client('account-management', me)
      return (await callStep(accounts, 'verifyLogin', (requestId) => ({ requestId, deviceId, loginId, bindingCode, password }), options)).login!
    },
    async fetchOrder(deviceId, options) {
      return (await callStep(await clients.client('payment-management', me), 'fetchOrder', (requestId) => ({ requestId, deviceId }), options)).order!
    },
    async prepay(deviceId, orderId, bindingId = '', options) {
      return callStep(await clients.client('payment-management', me), 'prepayOrder', (requestId) => ({ requestId, deviceId, orderId, bindingId }), options)
    },
    async pay(platformId, serialNumber, paymentPassword, options) {
      const platform = await clients.client('payment-platform', me)
      return (await callStep(platform, 'pay', (requestId) => ({ requestId, platformId, serialNumber, paymentPassword }), options)).transaction!
    },
    async payThroughRelay(prepaid, paymentPassword, caFile, options) {
      const platform = await clients.client('payment-platform', me)
      const published = await callStep(platform, 'getSealingKeys', () => ({ platformId: prepaid.platformId }), options)
      const [key] = verifySealingKeys(published, { platformId: prepaid.platformId, caCertificates: await readFile(caFile, 'utf8') })
      const amount = prepaid.order.amount!
      const aad = sealingAad({ serialNumber: prepaid.serialNumber, amountMinor: amount.amountMinor, currencyCode: amount.currencyCode, platformId: prepaid.platformId })
      const sealed = await sealCredentials({ paymentPassword }, key!.publicKey, aad)
      const payments = await clients.client('payment-management', me)
      const reply = await callStep(
        payments,
        'payThroughRelay',
        (requestId) => ({ requestId, deviceId: prepaid.deviceId, orderId: prepaid.order.orderId, platformId: prepaid.platformId, serialNumber: prepaid.serialNumber, keyId: key!.keyId, sealed }),
        options,
      )
      return reply.order!
    },
  }
}
