// The instance-events service: its schema, migrations, authorization rules, handlers and workers.
import { InstanceEventsServiceService } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { migrations } from './store/migrations/index.ts'
import { introspect, shared, workers } from './workers.ts'

export const instanceEvents = defineService({
  name: 'instance-events',
  schema: 'instance_events',
  protoName: 'cloudpay.events.v1.InstanceEventsService',
  definition: InstanceEventsServiceService,
  migrations,
  rules,
  shared,
  createHandlers,
  workers,
  introspect,
})
