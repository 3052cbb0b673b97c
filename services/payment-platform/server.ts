// The payment-platform service: its schema, migrations, authorization rules and handlers.
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { purges } from './retention.ts'
import { migrations } from './store/migrations/index.ts'

export const paymentPlatform = defineService({
  name: 'payment-platform',
  schema: 'payment_platform',
  protoName: 'cloudpay.platform.v1.PaymentPlatformService',
  definition: PaymentPlatformServiceService,
  migrations,
  rules,
  createHandlers,
  retention: purges,
})
