// The login flow as operator, instance and terminal act it out (DESIGN login steps 0-4): used by
// the demo, the bench and tests that need a logged-in instance. The instance's and the terminal's
// steps are the SDK's (sdk/); only the operator's set-up and the steps a test makes as some other
// party (`as`) are raw calls.
import { randomUUID } from 'node:crypto'
import { LoginState } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import type { MeshClients } from '../../sdk/calls.ts'
import { instanceSdk } from '../../sdk/instance.ts'
import { terminalSdk } from '../../sdk/terminal.ts'

export type { MeshClients }

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

  const startLogin = (deviceId: string) => instanceSdk(t, deviceId).startLogin()

  const verify = (deviceId: string, terminalId: string, loginId: string, bindingCode: string, password: string) =>
    terminalSdk(t, terminalId).approveLogin(deviceId, loginId, bindingCode, password)

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
    const device = instanceSdk(t, deviceId)
    const login = await device.startLogin()
    const verified = await terminalSdk(t, terminalId).approveLogin(deviceId, login.loginId, login.bindingCode, password)
    if (verified.state !== LoginState.LOGIN_STATE_VERIFIED) throw new Error(`login ${login.loginId} was not verified: ${LoginState[verified.state]}`)
    return device.logIn(login.loginId)
  }

  return { setUp, startLogin, verify, redeem, appLogin, logIn }
}
