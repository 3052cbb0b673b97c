// Who may call each InstanceEventsService RPC (default deny: every RPC is listed).
import { InstanceEventsServiceService } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { allow, allowServices, either, type Rules } from '../runtime/authz.ts'

export const rules: Rules<typeof InstanceEventsServiceService> = {
  openChannel: allow('operator'),
  closeChannel: allow('operator'),
  closeDeviceChannels: allowServices('account-management'),
  listChannels: allow('operator', 'terminal'),
  checkChannel: allow('service'),
  publish: either(allow('instance'), allow('service')),
  notify: allow('instance', 'terminal'),
  listEvents: allow('instance', 'terminal', 'operator'),
}
