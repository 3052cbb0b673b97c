// The account-management service: its schema, migrations, authorization rules, handlers and workers.
import { AccountManagementServiceService } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { defineService } from '../runtime/service-host.ts'
import { rules } from './authorization.ts'
import { createHandlers } from './handlers.ts'
import { migrations } from './store/migrations/index.ts'
import { introspect, shared, workers } from './workers.ts'

export const accountManagement = defineService({
  name: 'account-management',
  schema: 'account_management',
  protoName: 'cloudpay.account.v1.AccountManagementService',
  definition: AccountManagementServiceService,
  migrations,
  rules,
  shared,
  createHandlers,
  workers,
  introspect,
})
