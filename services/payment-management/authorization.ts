// Who may call each PaymentManagementService RPC (default deny: every RPC is listed).
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { allow, allowServices, OBJECT_RULES, type Rules, scoped } from '../runtime/authz.ts'

export const rules: Rules<typeof PaymentManagementServiceService> = {
  submitOrder: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  fetchOrder: scoped(allow('terminal'), OBJECT_RULES.channelDevice),
  // Operators read orders for support (they carry no secret); they cannot act on them.
  getOrder: scoped(allow('instance', 'terminal', 'operator'), OBJECT_RULES.orderOrClaim),
  listOrders: scoped(allow('instance', 'terminal', 'operator'), OBJECT_RULES.deviceAccess),
  prepayOrder: scoped(allow('terminal'), OBJECT_RULES.orderOrClaim),
  reportPaymentResult: scoped(allowServices('payment-platform'), OBJECT_RULES.prepayKey),
  authorizeTerminal: allowServices('payment-platform'),
  cancelOrder: scoped(allow('instance', 'terminal'), OBJECT_RULES.orderOrClaim),
  cancelDeviceOrders: allowServices('account-management'),
  // The same object rule as PrepayOrder (one check in the handlers: orderActedOnBy).
  payThroughRelay: scoped(allow('terminal'), OBJECT_RULES.orderOrClaim),
  // Public keys, relayed as the platform signed them.
  getSealingKeys: allow('terminal', 'operator'),
  claimOrder: scoped(allow('terminal'), OBJECT_RULES.orderAccountTerminal),
  endTerminalClaims: allowServices('account-management'),
}
