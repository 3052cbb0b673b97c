// Who may call each PaymentManagementService RPC (default deny: every RPC is listed).
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { allow, allowServices, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof PaymentManagementServiceService> = {
  submitOrder: allow('instance'),
  fetchOrder: allow('terminal'),
  getOrder: allow('instance', 'terminal', 'operator'),
  listOrders: allow('instance', 'terminal', 'operator'),
  prepayOrder: allow('terminal'),
  reportPaymentResult: allowServices('payment-platform'),
  cancelOrder: allow('instance', 'terminal'),
  cancelDeviceOrders: allowServices('account-management'),
}
