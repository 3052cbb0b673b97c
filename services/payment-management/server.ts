// The payment-management service: its schema, migrations, authorization rules, handlers and workers.
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { migrations } from './store/migrations/index.ts'
import { introspect, shared, workers } from './workers.ts'

export const paymentManagement = defineService({
  name: 'payment-management',
  schema: 'payment_management',
  protoName: 'cloudpay.payment.v1.PaymentManagementService',
  definition: PaymentManagementServiceService,
  migrations,
  rules,
  shared,
  createHandlers,
  workers,
  introspect,
})
