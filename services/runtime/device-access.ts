// The field rule shared by every service: who may act for a device id. An instance only for its
// own; a terminal only for a device it has an open channel to; operators and services for any.
import { PermissionDeniedError, quote } from './errors.ts'
import type { Identity } from './identity.ts'
import { assertInstanceActsForItself } from './authz.ts'

/** Answers whether a terminal has an open channel to a device (InstanceEvents knows). */
export type ChannelCheck = (deviceId: string, terminalId: string) => Promise<boolean>

export async function assertMayActForDevice(caller: Identity, deviceId: string, isChannelOpen: ChannelCheck, field = 'device_id'): Promise<void> {
  assertInstanceActsForItself(caller, deviceId, field)
  if (caller.role === 'terminal' && !(await isChannelOpen(deviceId, caller.id))) {
    throw new PermissionDeniedError('NO_CHANNEL', `terminal ${caller.id} has no open channel to device ${quote(deviceId)}`, { field })
  }
}
