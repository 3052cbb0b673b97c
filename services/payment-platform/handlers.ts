// PaymentPlatformService handlers. The payment flow (issue #4) fills these in.
import type { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'

export function createHandlers(_deps: ServiceDeps): Handlers<typeof PaymentPlatformServiceService> {
  return {
    createPayerAccount: notImplemented('CreatePayerAccount'),
    createMerchantAccount: notImplemented('CreateMerchantAccount'),
    getAccountBalance: notImplemented('GetAccountBalance'),
    createPrepay: notImplemented('CreatePrepay'),
    pay: notImplemented('Pay'),
    getTransaction: notImplemented('GetTransaction'),
    cancelTransaction: notImplemented('CancelTransaction'),
    refundTransaction: notImplemented('RefundTransaction'),
    listLedgerEntries: notImplemented('ListLedgerEntries'),
  }
}
