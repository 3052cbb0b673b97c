// The login flow as operator, instance and terminal act it out (DESIGN login steps 0-4): used by
// the demo and by tests that need a logged-in instance.
import { randomUUID } from 'node:crypto'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import type { ServiceName } from '../../services/runtime/config.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import type { ClientOf } from '../../services/runtime/peers.ts'

/** Generated clients of the mesh, each authenticated as some party. */
export interface MeshClients {
  client<Name extends ServiceName>(name: Name, identity: Identity): Promise<ClientOf<Name>>
}

export const OPERATOR: Identity = { role: 'operator', id: 'demo-operator' }
const newRequestId = (): string => randomUUID()

export const instance = (deviceId: string): Identity => ({ role: 'instance', id: deviceId })
export const terminal = (terminalId: string): Identity => ({ role: 'terminal', id: terminalId })

export function flows(t: MeshClients, operator: Identity = OPERATOR) {
  /** Step 0: the operator registers the account, assigns the instance, connects the terminal. */
  async function setUp(accountId: string, password: string, deviceId: string, terminalId: string, register = true) {
    const accounts = await t.client('account-management', operator)
    const events = await t.client('instance-events', operator)
    if (register) await unaryCall(accounts, 'registerCloudAccount', { requestId: newRequestId(), accountId, password })
    await unaryCall(accounts, 'assignInstance', { requestId: newRequestId(), deviceId, accountId })
    await unaryCall(events, 'openChannel', { requestId: newRequestId(), deviceId, terminalId })
  }

  async function startLogin(deviceId: string) {
    const am = await t.client('account-management', instance(deviceId))
    const { login } = await unaryCall(am, 'startLogin', { requestId: newRequestId(), deviceId })
    const pipe = await t.client('instance-events', instance(deviceId))
    await unaryCall(pipe, 'publish', { requestId: newRequestId(), deviceId, kind: EventKind.EVENT_KIND_LOGIN_REQUESTED, subjectId: login!.loginId })
    return login!
  }

  async function verify(deviceId: string, terminalId: string, loginId: string, bindingCode: string, password: string) {
    const am = await t.client('account-management', terminal(terminalId))
    return (await unaryCall(am, 'verifyLogin', { requestId: newRequestId(), deviceId, loginId, bindingCode, password })).login!
  }

  async function redeem(deviceId: string, loginId: string, as = instance(deviceId)) {
    const am = await t.client('account-management', as)
    return unaryCall(am, 'redeemLogin', { requestId: newRequestId(), deviceId, loginId })
  }

  async function appLogin(deviceId: string, loginToken: string, as = instance(deviceId)) {
    const app = await t.client('app-service', as)
    return unaryCall(app, 'loginWithToken', { requestId: newRequestId(), deviceId, loginToken })
  }

  /** Steps 1-4 for a set-up device; returns the app session. */
  async function logIn(deviceId: string, terminalId: string, password: string) {
    const login = await startLogin(deviceId)
    const verified = await verify(deviceId, terminalId, login.loginId, login.bindingCode, password)
    if (verified.state !== LoginState.LOGIN_STATE_VERIFIED) throw new Error(`login ${login.loginId} was not verified: ${LoginState[verified.state]}`)
    const { loginToken } = await redeem(deviceId, login.loginId)
    return appLogin(deviceId, loginToken)
  }

  return { setUp, startLogin, verify, redeem, appLogin, logIn }
}
