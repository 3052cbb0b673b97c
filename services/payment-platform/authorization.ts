// Who may call each PaymentPlatformService RPC (default deny: every RPC is listed).
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { allow, allowServices, either, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof PaymentPlatformServiceService> = {
  createPayerAccount: allow('operator'),
  createMerchantAccount: allow('operator'),
  getAccountBalance: allow('operator'),
  createPrepay: allowServices('payment-management'),
  pay: allow('terminal'),
  getTransaction: either(allowServices('payment-management'), allow('terminal', 'operator')),
  cancelTransaction: allowServices('payment-management'),
  refundTransaction: allowServices('payment-management'),
  listLedgerEntries: allow('operator'),
}
