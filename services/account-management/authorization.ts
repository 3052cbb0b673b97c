// Who may call each AccountManagementService RPC (default deny: every RPC is listed).
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { allow, allowServices, OBJECT_RULES, type Rules, scoped } from '../runtime/authz.ts'

export const rules: Rules<typeof AccountManagementServiceService> = {
  registerCloudAccount: allow('operator'),
  getCloudAccount: allow('operator'),
  listCloudAccounts: allow('operator'),
  assignInstance: allow('operator'),
  releaseInstance: allow('operator'),
  getInstanceAssignment: scoped(allow('operator', 'instance'), OBJECT_RULES.ownDevice),
  startLogin: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  getLogin: scoped(allow('instance', 'terminal'), OBJECT_RULES.deviceAccess),
  verifyLogin: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  redeemLogin: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  validateLoginToken: allowServices('app-service'),
  bindAppAccount: allowServices('app-service'),
  bindPaymentAccount: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  listPaymentAccounts: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  setDefaultPaymentAccount: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  unbindPaymentAccount: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  resolvePaymentAccount: allowServices('payment-management'),
  enrollTerminal: scoped(allow('terminal'), OBJECT_RULES.enrollingTerminal),
  listAccountTerminals: scoped(allow('terminal', 'operator'), OBJECT_RULES.accountTerminals),
  removeTerminal: scoped(allow('terminal', 'operator'), OBJECT_RULES.accountTerminals),
  listTerminalsOfDevice: allowServices('payment-management'),
  // InstanceEvents asks before a terminal follows its stream; PaymentManagement before a terminal claims or acts for a claimed order.
  getTerminalEnrollment: allowServices('instance-events', 'payment-management'),
}
