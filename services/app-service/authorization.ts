// Who may call each AppService RPC (default deny: every RPC is listed).
import { AppServiceService } from '../../gen/cloudpay/app/v1/app_service.ts'
import { allow, allowServices, either, OBJECT_RULES, type Rules, scoped } from '../runtime/authz.ts'

export const rules: Rules<typeof AppServiceService> = {
  loginWithToken: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  getAppAccount: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  // The catalog is public: operators may read it too.
  listCatalogItems: allow('instance', 'operator'),
  createOrder: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  getOrder: scoped(either(allow('instance'), allowServices('payment-management')), OBJECT_RULES.ownDevice),
  fulfilOrder: allowServices('payment-management'),
  listInventory: scoped(allow('instance'), OBJECT_RULES.ownDevice),
  endDeviceSessions: allowServices('account-management'),
}
