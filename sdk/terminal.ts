// The terminal side of cloudpay in one typed call per step: follow a device or the terminal's own
// stream, enrol in the person's cloud account, approve a login, fetch or claim an order, prepay
// it, and pay at the platform directly or through PaymentManagement's relay (the credentials
// sealed on the terminal for the platform alone, with keys it verified against the mesh CA);
// provision an offline credential and see what was redeemed with it (generation itself is
// offline: sdk/offline-code.ts).
import { readFile } from 'node:fs/promises'
import type { AccountTerminal, Login, PaymentAccountBinding } from '../gen/cloudpay/account/v1/account_management_service.ts'
import type { Event, TerminalEvent } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import { Gesture, type Order, type PrepayOrderResponse } from '../gen/cloudpay/payment/v1/payment_management_service.ts'
import type { Money } from '../gen/cloudpay/common/v1/money.ts'
import type { ListOfflineRedemptionsResponse, RevokeOfflineCredentialResponse, Transaction } from '../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { Identity } from '../services/runtime/identity.ts'
import { type PublishedSealingKeys, type SealedFor, SealingKeysRefused, sealCredentials, sealingAad, verifySealingKeys } from '../services/runtime/sealed-credentials.ts'
import { callStep, CloudpayCallError, type EventFollower, followDevice, followTerminal, type MeshClients, type StepOptions } from './calls.ts'
import { type StoredCredential, storedCredential } from './offline-code.ts'

export { CloudpayCallError }

export type ClaimGesture = 'tap' | 'slide' | 'lift'
const GESTURES: Record<ClaimGesture, Gesture> = { tap: Gesture.GESTURE_TAP, slide: Gesture.GESTURE_SLIDE, lift: Gesture.GESTURE_LIFT }

export interface TerminalSdk {
  /** Enrols this terminal in a cloud account by proving its password once; opens no channel. */
  enroll(accountId: string, password: string, displayName: string, options?: StepOptions): Promise<AccountTerminal>
  /** Waits on a connected device's pipe for the first event `match` picks (one subscription per device, resumed across breaks). */
  nextEvent(deviceId: string, match: (event: Event) => boolean, options?: StepOptions): Promise<Event>
  /** Waits on the terminal's own stream (pushes: PAYMENT_PUSHED, ORDER_CLAIMED_ELSEWHERE, TERMINAL_REMOVED). */
  nextPush(match: (event: TerminalEvent) => boolean, options?: StepOptions): Promise<TerminalEvent>
  /** Claims a pushed order by the gesture the person made; the first claim on any terminal wins. */
  claimOrder(orderId: string, gesture?: ClaimGesture, options?: StepOptions): Promise<Order>
  /** Binds a payer account at a platform to the device's cloud account (the instance never sees it). */
  bindPaymentAccount(deviceId: string, platformId: string, payerAccount: string, makeDefault: boolean, options?: StepOptions): Promise<PaymentAccountBinding>
  /** Sends what the person typed (password, binding code) to AccountManagement only. */
  approveLogin(deviceId: string, loginId: string, bindingCode: string, password: string, options?: StepOptions): Promise<Login>
  /** The device's earliest order not fetched yet. */
  fetchOrder(deviceId: string, options?: StepOptions): Promise<Order>
  /** Sends the order to the chosen (or default) platform: its serial number to pay. */
  prepay(deviceId: string, orderId: string, bindingId?: string, options?: StepOptions): Promise<PrepayOrderResponse>
  /** Pays at the platform directly with the payment password. */
  pay(platformId: string, serialNumber: string, paymentPassword: string, options?: StepOptions): Promise<Transaction>
  /**
   * Pays through PaymentManagement alone: the platform's sealing keys (relayed by
   * PaymentManagement) are verified against the mesh CA (`caFile`), the password sealed to the
   * newest, and only the sealed bytes leave the terminal.
   */
  payThroughRelay(prepaid: { deviceId: string; order: Order; platformId: string; serialNumber: string }, paymentPassword: string, caFile: string, options?: StepOptions): Promise<Order>
  /**
   * Online, beforehand: an offline credential for a payer account (the payment password checked
   * as Pay checks it; `allowance` reserved at once). Store what it returns on the terminal only.
   */
  provisionOffline(
    platformId: string,
    payerAccount: string,
    paymentPassword: string,
    limits: { allowance: Money; perCodeCapMinor: bigint; expireTime?: Date },
    options?: StepOptions,
  ): Promise<StoredCredential>
  /** What payees redeemed with a credential (newest first) and what is left of its allowance. */
  listOfflineRedemptions(platformId: string, credentialId: string, page?: { pageSize?: number; pageToken?: string }, options?: StepOptions): Promise<ListOfflineRedemptionsResponse>
  /** Ends a credential: what is left of the allowance goes back to the payer account. */
  revokeOffline(platformId: string, credentialId: string, options?: StepOptions): Promise<RevokeOfflineCredentialResponse>
  /** Ends the terminal's subscriptions (an open stream keeps a process alive). */
  close(): void
}

/** The SDK of the terminal with this id, over clients authenticated as that terminal. */
export function terminalSdk(clients: MeshClients, terminalId: string): TerminalSdk {
  const me: Identity = { role: 'terminal', id: terminalId }
  const followers = new Map<string, Promise<{ close(): void }>>()
  const followed = <E>(key: string, start: () => Promise<EventFollower<E>>): Promise<EventFollower<E>> => {
    if (!followers.has(key)) followers.set(key, start())
    return followers.get(key) as Promise<EventFollower<E>>
  }
  const events = () => clients.client('instance-events', me)
  return {
    async enroll(accountId, password, displayName, options) {
      const accounts = await clients.client('account-management', me)
      return (await callStep(accounts, 'enrollTerminal', (requestId) => ({ requestId, accountId, password, displayName }), options)).terminal!
    },
    async nextEvent(deviceId, match, options = {}) {
      return (await followed(`device/${deviceId}`, async () => followDevice(await events(), deviceId))).next(match, options)
    },
    async nextPush(match, options = {}) {
      return (await followed('terminal', async () => followTerminal(await events()))).next(match, options)
    },
    async claimOrder(orderId, gesture = 'tap', options) {
      const payments = await clients.client('payment-management', me)
      return (await callStep(payments, 'claimOrder', (requestId) => ({ requestId, orderId, gesture: GESTURES[gesture] }), options)).order!
    },
    async bindPaymentAccount(deviceId, platformId, payerAccount, makeDefault, options) {
      const accounts = await clients.client('account-management', me)
      return (await callStep(accounts, 'bindPaymentAccount', (requestId) => ({ requestId, deviceId, platformId, payerAccount, makeDefault }), options)).binding!
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
      const payments = await clients.client('payment-management', me)
      const published = await callStep(payments, 'getSealingKeys', () => ({ platformId: prepaid.platformId }), options)
      const amount = prepaid.order.amount!
      const target = { serialNumber: prepaid.serialNumber, amountMinor: amount.amountMinor, currencyCode: amount.currencyCode, platformId: prepaid.platformId }
      const { keyId, sealed } = await sealForTransaction(published, target, paymentPassword, await readFile(caFile, 'utf8'))
      const reply = await callStep(
        payments,
        'payThroughRelay',
        (requestId) => ({ requestId, deviceId: prepaid.deviceId, orderId: prepaid.order.orderId, platformId: prepaid.platformId, serialNumber: prepaid.serialNumber, keyId, sealed }),
        options,
      )
      return reply.order!
    },
    async provisionOffline(platformId, payerAccount, paymentPassword, limits, options) {
      const platform = await clients.client('payment-platform', me)
      const reply = await callStep(
        platform,
        'provisionOfflineCredential',
        (requestId) => ({ requestId, platformId, payerAccount, paymentPassword, allowance: limits.allowance, perCodeCapMinor: limits.perCodeCapMinor, expireTime: limits.expireTime }),
        options,
      )
      return storedCredential(reply)
    },
    async listOfflineRedemptions(platformId, credentialId, page = {}, options) {
      const platform = await clients.client('payment-platform', me)
      return callStep(platform, 'listOfflineRedemptions', () => ({ platformId, credentialId, pageSize: page.pageSize ?? 0, pageToken: page.pageToken ?? '' }), options)
    },
    async revokeOffline(platformId, credentialId, options) {
      return callStep(await clients.client('payment-platform', me), 'revokeOfflineCredential', (requestId) => ({ requestId, platformId, credentialId }), options)
    },
    close() {
      for (const follower of followers.values()) void follower.then((f) => f.close(), () => undefined)
      followers.clear()
    },
  }
}

/**
 * Offline, on the terminal: seals the payment password for one prepaid transaction to the newest
 * of the platform's published keys that verifies against the mesh CA (`caCertificates`, PEM).
 */
export async function sealForTransaction(published: PublishedSealingKeys, target: SealedFor, paymentPassword: string, caCertificates: string | Buffer): Promise<{ keyId: string; sealed: Buffer }> {
  const [key] = verifySealingKeys(published, { platformId: target.platformId, caCertificates })
  if (!key) throw new SealingKeysRefused(`${target.platformId} published no sealing key that is valid now: fetch its keys again`)
  return { keyId: key.keyId, sealed: await sealCredentials({ paymentPassword }, key.publicKey, sealingAad(target)) }
}
