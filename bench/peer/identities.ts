// Who is who in the peer login race (bench/peer/provider.ts and its client, bench/peer/ciba-login.ts).
export const PEER_CLIENT_ID = 'bench-instance'
/** The consumption device's certificate identity, registered as the client's tls_client_auth_san_uri. */
export const PEER_CLIENT_IDENTITY = { role: 'instance', id: 'oidc-peer-client' } as const
/** The authentication device (the person's phone). */
export const PEER_DEVICE_IDENTITY = { role: 'terminal', id: 'oidc-peer-device' } as const
export const PEER_OPERATOR_IDENTITY = { role: 'operator', id: 'oidc-peer-operator' } as const
export const PEER_SERVER_IDENTITY = { role: 'service', id: 'oidc-peer' } as const
export const SPIFFE = 'spiffe://cloudpay.local'
