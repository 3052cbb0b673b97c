// Clients a service uses to reach the other services, created on first use with its own identity.
import type { ChannelCredentials } from '@grpc/grpc-js'
import type { Tracer } from '@opentelemetry/api'
import { AccountManagementServiceClient } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { AppServiceClient } from '../../gen/cloudpay/app/v1/app_service.ts'
import { InstanceEventsServiceClient } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { PaymentManagementServiceClient } from '../../gen/cloudpay/payment/v1/payment_management_service.ts'
import { PaymentPlatformServiceClient } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { PushRelayServiceClient } from '../../gen/cloudpay/push/v1/push_relay_service.ts'
import { createClient } from './client.ts'
import type { ServiceName } from './config.ts'

export const SERVICE_CLIENTS = {
  'account-management': AccountManagementServiceClient,
  'payment-management': PaymentManagementServiceClient,
  'instance-events': InstanceEventsServiceClient,
  'payment-platform': PaymentPlatformServiceClient,
  'app-service': AppServiceClient,
  // The development relay in the mesh, or a real one at CLOUDPAY_PUSH_RELAY_ADDR.
  'push-relay': PushRelayServiceClient,
} as const satisfies Record<ServiceName, unknown>

export type ClientOf<Name extends ServiceName> = InstanceType<(typeof SERVICE_CLIENTS)[Name]>

export class Peers {
  private readonly clients = new Map<ServiceName, { close(): void }>()

  constructor(
    /** The live address book: the mesh fills in ports bound at start-up (port 0 in tests). */
    private readonly addresses: ReadonlyMap<ServiceName, string>,
    private readonly credentials: ChannelCredentials,
    private readonly tracer: Tracer,
  ) {}

  get<Name extends ServiceName>(name: Name): ClientOf<Name> {
    let client = this.clients.get(name)
    if (!client) {
      client = createClient(
        SERVICE_CLIENTS[name] as unknown as new (address: string, credentials: ChannelCredentials) => ClientOf<Name>,
        this.addressOf(name),
        this.credentials,
        this.tracer,
      )
      this.clients.set(name, client)
    }
    return client as ClientOf<Name>
  }

  private addressOf(name: ServiceName): string {
    const address = this.addresses.get(name)
    if (!address) throw new Error(`no address known for ${name}`)
    return address
  }

  close(): void {
    for (const client of this.clients.values()) client.close()
    this.clients.clear()
  }
}
