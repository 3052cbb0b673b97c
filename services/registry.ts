// All six services, in start order.
import { accountManagement } from './account-management/server.ts'
import { appService } from './app-service/server.ts'
import { instanceEvents } from './instance-events/server.ts'
import { paymentManagement } from './payment-management/server.ts'
import { paymentPlatform } from './payment-platform/server.ts'
import { pushRelay } from './push-relay/server.ts'
import type { ServiceSpec } from './runtime/service-host.ts'

export const ALL_SERVICES: readonly ServiceSpec[] = [accountManagement, paymentManagement, instanceEvents, paymentPlatform, appService, pushRelay]
