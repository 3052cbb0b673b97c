// Who may call each PushRelayService RPC (default deny: every RPC is listed). The relay's only
// authentication of a wake is its caller's mutual TLS identity: PaymentManagement's.
import { PushRelayServiceService } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { allow, allowServices, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof PushRelayServiceService> = {
  wake: allowServices('payment-management'),
  // What the development relay would have sent, for operators (and tests) to see.
  listWakes: allow('operator'),
}
