// The app-service service: its schema, migrations, authorization rules, handlers and workers.
import { AppServiceService } from '../../gen/cloudpay/app/v1/app_service.ts'
import { retentionWorker } from '../runtime/retention.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { purges } from './retention.ts'
import { migrations } from './store/migrations/index.ts'

export const appService = defineService({
  name: 'app-service',
  schema: 'app_service',
  protoName: 'cloudpay.app.v1.AppService',
  definition: AppServiceService,
  migrations,
  rules,
  createHandlers,
  // Its only background work: forgetting what it no longer needs.
  workers: (deps) => [retentionWorker(deps, purges(deps))],
})
