// PaymentManagementService handlers. The payment flow (issue #4) fills these in.
import type { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'

export function createHandlers(_deps: ServiceDeps): Handlers<typeof PaymentManagementServiceService> {
  return {
    submitOrder: notImplemented('SubmitOrder'),
    fetchOrder: notImplemented('FetchOrder'),
    getOrder: notImplemented('GetOrder'),
    listOrders: notImplemented('ListOrders'),
    prepayOrder: notImplemented('PrepayOrder'),
    reportPaymentResult: notImplemented('ReportPaymentResult'),
    cancelOrder: notImplemented('CancelOrder'),
  }
}
