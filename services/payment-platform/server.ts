// The payment-platform service: its schema, migrations, authorization rules, handlers and workers.
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { migrations } from './store/migrations/index.ts'
import { introspect, shared, workers } from './workers.ts'

export const paymentPlatform = defineService({
  name: 'payment-platform',
  schema: 'payment_platform',
  protoName: 'cloudpay.platform.v1.PaymentPlatformService',
  definition: PaymentPlatformServiceService,
  migrations,
  rules,
  shared,
  createHandlers,
  workers,
  introspect,
})
