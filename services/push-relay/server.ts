// The push-relay service (development implementation of cloudpay.push.v1.PushRelayService): its
// schema, migrations, authorization rules, handlers and workers.
import { PushRelayServiceService } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { retentionWorker } from '../runtime/retention.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { purges } from './retention.ts'
import { migrations } from './store/migrations/index.ts'

export const pushRelay = defineService({
  name: 'push-relay',
  schema: 'push_relay',
  protoName: 'cloudpay.push.v1.PushRelayService',
  definition: PushRelayServiceService,
  migrations,
  rules,
  createHandlers,
  // Its only background work: forgetting what it no longer needs.
  workers: (deps) => [retentionWorker(deps, purges(deps))],
})
