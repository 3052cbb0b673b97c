// The instance side of cloudpay in one typed call per step: start a login and wait for it on the
// pipe, log in to the application, order, submit, and wait for the outcome. The instance never
// handles a credential, a payment account or a payment password.
import { type Event, EventKind } from '../gen/cloudpay/events/v1/instance_events_service.ts'
import type { Login } from '../gen/cloudpay/account/v1/account_management_service.ts'
import type { AppOrder, LoginWithTokenResponse } from '../gen/cloudpay/app/v1/app_service.ts'
import type { Order } from '../gen/cloudpay/payment/v1/payment_management_service.ts'
import type { Identity } from '../services/runtime/identity.ts'
import { callStep, CloudpayCallError, type EventFollower, followDevice, type MeshClients, type StepOptions } from './calls.ts'

export { CloudpayCallError }

export type LoginOutcome = 'verified' | 'rejected'
export type OrderOutcome = 'effective' | 'failed'

export interface InstanceSdk {
  /** Starts a login and asks the terminal on the pipe; show `bindingCode` on screen. */
  startLogin(options?: StepOptions): Promise<Login>
  /** Waits on the pipe (no polling) until the person's terminal verified or rejected the login. */
  waitForLogin(loginId: string, options?: StepOptions): Promise<LoginOutcome>
  /** Redeems the verified login and logs in to the application: the app account and a session. */
  logIn(loginId: string, options?: StepOptions): Promise<LoginWithTokenResponse>
  /** Orders at the application (its own price), submits the order for payment and asks on the pipe. */
  order(sessionToken: string, itemId: string, quantity: number, options?: StepOptions): Promise<{ appOrder: AppOrder; order: Order }>
  /** Waits on the pipe until the order took effect (items delivered) or failed. */
  waitForOutcome(orderId: string, options?: StepOptions): Promise<OrderOutcome>
  /** The device's pipe, followed once for every wait of this SDK (from the start of the retained stream). */
  events(): Promise<EventFollower<Event>>
  /** Ends the pipe subscription (an open stream keeps a process alive). */
  close(): void
}

/** The SDK of the instance with this device id, over clients authenticated as that instance. */
export function instanceSdk(clients: MeshClients, deviceId: string): InstanceSdk {
  const me: Identity = { role: 'instance', id: deviceId }
  const accounts = () => clients.client('account-management', me)
  const events = () => clients.client('instance-events', me)
  const app = () => clients.client('app-service', me)
  const payments = () => clients.client('payment-management', me)
  let follower: Promise<EventFollower<Event>> | undefined
  const pipe = (): Promise<EventFollower<Event>> => (follower ??= events().then((client) => followDevice(client, deviceId)))
  const waitFor = async (subjectId: string, kinds: readonly EventKind[], options: StepOptions): Promise<Event> =>
    (await pipe()).next((e) => e.subjectId === subjectId && kinds.includes(e.kind), options)
  return {
    async startLogin(options) {
      const { login } = await callStep(await accounts(), 'startLogin', (requestId) => ({ requestId, deviceId }), options)
      await callStep(await events(), 'publish', (requestId) => ({ requestId, deviceId, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: login!.loginId }), options)
      return login!
    },
    async waitForLogin(loginId, options = {}) {
      const event = await waitFor(loginId, [EventKind.EVENT_KIND_LOGIN_VERIFIED, EventKind.EVENT_KIND_LOGIN_REJECTED], options)
      return event.kind === EventKind.EVENT_KIND_LOGIN_VERIFIED ? 'verified' : 'rejected'
    },
    async logIn(loginId, options) {
      const { loginToken } = await callStep(await accounts(), 'redeemLogin', (requestId) => ({ requestId, deviceId, loginId }), options)
      return callStep(await app(), 'loginWithToken', (requestId) => ({ requestId, deviceId, loginToken }), options)
    },
    async order(sessionToken, itemId, quantity, options) {
      const { order: appOrder } = await callStep(await app(), 'createOrder', (requestId) => ({ requestId, deviceId, sessionToken, itemId, quantity }), options)
      const { order } = await callStep(await payments(), 'submitOrder', (requestId) => ({ requestId, deviceId, appOrderId: appOrder!.appOrderId }), options)
      await callStep(await events(), 'publish', (requestId) => ({ requestId, deviceId, kind: EventKind.EVENT_KIND_PAYMENT_REQUESTED, subjectId: order!.orderId }), options)
      return { appOrder: appOrder!, order: order! }
    },
    async waitForOutcome(orderId, options = {}) {
      const event = await waitFor(orderId, [EventKind.EVENT_KIND_ORDER_EFFECTIVE, EventKind.EVENT_KIND_ORDER_FAILED], options)
      return event.kind === EventKind.EVENT_KIND_ORDER_EFFECTIVE ? 'effective' : 'failed'
    },
    events: pipe,
    close() {
      void follower?.then((f) => f.close(), () => undefined)
    },
  }
}
