// Who may call each InstanceEventsService RPC (default deny: every RPC is listed).
import { InstanceEventsServiceService } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { allow, allowServices, either, OBJECT_RULES, type Rules, scoped } from '../runtime/authz.ts'

export const rules: Rules<typeof InstanceEventsServiceService> = {
  openChannel: allow('operator'),
  closeChannel: allow('operator'),
  closeDeviceChannels: allowServices('account-management'),
  listChannels: scoped(allow('operator', 'terminal'), OBJECT_RULES.ownTerminal),
  // Only the services that decide what a terminal may do for a device ask.
  checkChannel: allowServices('account-management', 'payment-management'),
  publish: scoped(either(allow('instance'), allowServices('account-management', 'payment-management')), OBJECT_RULES.publishableKinds),
  notify: scoped(allow('instance', 'terminal'), OBJECT_RULES.deviceAccess),
  // The pipe is between an instance, its terminals and the services; operators do not read it.
  listEvents: scoped(allow('instance', 'terminal'), OBJECT_RULES.deviceAccess),
  followTerminal: scoped(allow('terminal'), OBJECT_RULES.ownTerminalStream),
  publishToTerminals: scoped(allowServices('payment-management', 'account-management', 'payment-platform'), OBJECT_RULES.terminalKinds),
}
