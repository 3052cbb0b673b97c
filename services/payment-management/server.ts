// The payment-management service: its schema, migrations, authorization rules and handlers.
import { PaymentManagementServiceService } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { purges } from './retention.ts'
import { migrations } from './store/migrations/index.ts'

export const paymentManagement = defineService({
  name: 'payment-management',
  schema: 'payment_management',
  protoName: 'cloudpay.payment.v1.PaymentManagementService',
  definition: PaymentManagementServiceService,
  migrations,
  rules,
  createHandlers,
  retention: purges,
})
