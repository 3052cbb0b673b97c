// The payee side of offline payment codes (a merchant's counter, POS or server holding a payee):
// publish a key, show the payee code, open a shown payment code with its own private keys and
// redeem it at the platform. The private keys stay in this object (persist them your own way).
import type { Money } from '../gen/cloudpay/common/v1/money.ts'
import type { OfflineRedemption, PayeeKey } from '../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { Identity } from '../services/runtime/identity.ts'
import { callStep, type MeshClients, type StepOptions } from './calls.ts'
import { generatePayeeKeyPair, openPaymentCode, type PayeeKeyPair } from './offline-code.ts'

export interface PayeeSdk {
  /** Makes a key pair, publishes its public half, keeps the private one (newest first). */
  publishKey(options?: StepOptions): Promise<PayeeKey>
  /** The payee code to show (string; render it with qrForTerminal / qrPng). */
  payeeCode(options?: StepOptions): Promise<string>
  /** Opens a shown payment code (only this payee can) and redeems it for `amount`. */
  redeem(paymentCode: string, amount: Money, options?: StepOptions): Promise<OfflineRedemption>
  /** The private keys held (to persist, or to drop one past its grace). */
  readonly keys: readonly PayeeKeyPair[]
}

/** The SDK of the holder `holder` of payee `payeeId` at `platformId`. */
export function payeeSdk(clients: MeshClients, holder: Identity, platformId: string, payeeId: string, keys: PayeeKeyPair[] = []): PayeeSdk {
  const platform = () => clients.client('payment-platform', holder)
  return {
    keys,
    async publishKey(options) {
      const pair = await generatePayeeKeyPair()
      const { key } = await callStep(await platform(), 'publishPayeeKey', (requestId) => ({ requestId, platformId, payeeId, publicKey: pair.publicKey }), options)
      keys.unshift({ keyId: key!.keyId, privateKey: pair.privateKey })
      return key!
    },
    async payeeCode(options) {
      return (await callStep(await platform(), 'getPayeeCode', () => ({ platformId, payeeId }), options)).code
    },
    async redeem(paymentCode, amount, options) {
      const opened = Buffer.from(await openPaymentCode(paymentCode, { platformId, payeeId, keys }))
      return (await callStep(await platform(), 'redeemOfflineCode', (requestId) => ({ requestId, platformId, payeeId, code: opened, amount }), options)).redemption!
    },
  }
}
