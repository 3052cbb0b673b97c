// Who may call each AppService RPC (default deny: every RPC is listed).
import { AppServiceService } from '../../gen/cloudpay/app/v1/app_service.ts'
import { allow, allowServices, either, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof AppServiceService> = {
  loginWithToken: allow('instance'),
  getAppAccount: allow('instance'),
  listCatalogItems: allow('instance', 'operator'),
  createOrder: allow('instance'),
  getOrder: either(allow('instance'), allowServices('payment-management')),
  fulfilOrder: allowServices('payment-management'),
  listInventory: allow('instance'),
  endDeviceSessions: allowServices('account-management'),
}
