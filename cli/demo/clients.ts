// Generated clients for the demo's parties (operator, instance, terminal), each with its own
// development certificate and its own tracer, so their spans show as separate parties.
import type { ChannelCredentials } from '@grpc/grpc-js'
import { createClient } from '../../services/runtime/client.ts'
import type { Config, ServiceName } from '../../services/runtime/config.ts'
import { formatIdentity, type Identity } from '../../services/runtime/identity.ts'
import { type ClientOf, SERVICE_CLIENTS } from '../../services/runtime/peers.ts'
import type { Telemetry } from '../../services/runtime/telemetry.ts'
import { certificateFiles, channelCredentials } from '../../services/runtime/tls.ts'
import type { MeshClients } from './steps.ts'

export function demoClients(config: Config, addresses: ReadonlyMap<ServiceName, string>, telemetry: Telemetry): MeshClients & { close(): void } {
  const clients = new Map<string, { close(): void }>()
  return {
    async client<Name extends ServiceName>(name: Name, identity: Identity): Promise<ClientOf<Name>> {
      const key = `${name} ${formatIdentity(identity)}`
      let client = clients.get(key)
      if (!client) {
        const credentials = channelCredentials(await certificateFiles(config, identity), config.tlsRefreshMs)
        const Client = SERVICE_CLIENTS[name] as unknown as new (address: string, credentials: ChannelCredentials) => ClientOf<Name>
        client = createClient(Client, addresses.get(name) ?? config.addresses[name], credentials, telemetry.tracer(identity.role))
        clients.set(key, client)
      }
      return client as ClientOf<Name>
    },
    close() {
      for (const client of clients.values()) client.close()
      clients.clear()
    },
  }
}
