// Who may call each AccountManagementService RPC (default deny: every RPC is listed).
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { allow, allowServices, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof AccountManagementServiceService> = {
  registerCloudAccount: allow('operator'),
  getCloudAccount: allow('operator'),
  listCloudAccounts: allow('operator'),
  assignInstance: allow('operator'),
  releaseInstance: allow('operator'),
  getInstanceAssignment: allow('operator', 'instance'),
  startLogin: allow('instance'),
  getLogin: allow('instance', 'terminal'),
  verifyLogin: allow('terminal'),
  redeemLogin: allow('instance'),
  validateLoginToken: allowServices('app-service'),
  bindAppAccount: allowServices('app-service'),
  bindPaymentAccount: allow('terminal'),
  listPaymentAccounts: allow('terminal'),
  setDefaultPaymentAccount: allow('terminal'),
  unbindPaymentAccount: allow('terminal'),
  resolvePaymentAccount: allowServices('payment-management'),
}
