// The peer the login race runs against: an OpenID Provider (oidc-provider 9.13) serving OpenID
// CIBA in poll mode, clients authenticated by mutual TLS (RFC 8705 tls_client_auth, against the
// same development CA as the mesh), the person's password verified with the same Argon2id library
// and parameters as cloudpay (services/runtime/passwords.ts) when the authentication device
// approves. Its own process, like a cloudpay service; oidc-provider's in-memory adapter (its default).
//
//   node --import tsx bench/peer/provider.ts      (CLOUDPAY_HOME holds the development CA)
//
// Reports { listening: port } over IPC. Routes besides oidc-provider's own (/backchannel, /token):
//   POST /bench/register  {login_hint, password}   operator certificate: adds a person
//   POST /device/approve  {auth_req_id, password}  terminal certificate: the authentication device
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { once } from 'node:events'
import { createServer as createTlsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import Provider, { errors, type KoaContext } from 'oidc-provider'
import { loadConfig } from '../../services/runtime/config.ts'
import { hashPassword, verifyPassword } from '../../services/runtime/passwords.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'

import { PEER_CLIENT_ID, PEER_CLIENT_IDENTITY, PEER_SERVER_IDENTITY, SPIFFE } from './identities.ts'

const uris = (certificate: X509Certificate): string[] =>
  (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4))

function peerCertificate(socket: TLSSocket): X509Certificate | undefined {
  const raw = socket.getPeerCertificate()?.raw
  return raw ? new X509Certificate(raw) : undefined
}

async function main(): Promise<void> {
  const config = loadConfig({ CLOUDPAY_HOME: process.env.CLOUDPAY_HOME ?? '.cloudpay' })
  const paths = await certificateFiles(config, PEER_SERVER_IDENTITY)
  const server = createTlsServer({
    key: readFileSync(paths.keyFile),
    cert: readFileSync(paths.certFile),
    ca: readFileSync(paths.caFile),
    requestCert: true,
    rejectUnauthorized: true,
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port

  const passwords = new Map<string, string>()
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const provider = new Provider(`https://localhost:${port}`, {
    clients: [
      {
        client_id: PEER_CLIENT_ID,
        grant_types: ['urn:openid:params:grant-type:ciba'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'tls_client_auth',
        tls_client_auth_san_uri: `${SPIFFE}/${PEER_CLIENT_IDENTITY.role}/${PEER_CLIENT_IDENTITY.id}`,
        backchannel_token_delivery_mode: 'poll',
        id_token_signed_response_alg: 'ES256',
      },
    ],
    clientAuthMethods: ['tls_client_auth'],
    findAccount: async (_ctx, id) => (passwords.has(id) ? { accountId: id, claims: async () => ({ sub: id }) } : undefined),
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig', kid: 'bench' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Seconds; what a login's artifacts live for (explicit, as oidc-provider asks).
    ttl: { BackchannelAuthenticationRequest: 600, Grant: 3600, AccessToken: 3600, IdToken: 3600 },
    features: {
      devInteractions: { enabled: false },
      ciba: {
        enabled: true,
        deliveryModes: ['poll'],
        processLoginHint: async (_ctx, loginHint) => (passwords.has(loginHint) ? loginHint : undefined),
        verifyUserCode: async () => undefined,
        validateRequestContext: async () => undefined,
        validateBindingMessage: async () => undefined,
        // The push to the person's device is the device's own channel (for cloudpay, the Notify
        // pipe); here the load generator hands auth_req_id to its device directly.
        triggerAuthenticationDevice: async () => undefined,
      },
      mTLS: {
        enabled: true,
        tlsClientAuth: true,
        getCertificate: (ctx: KoaContext) => peerCertificate(ctx.socket),
        certificateAuthorized: (ctx: KoaContext) => ctx.socket.authorized === true,
        certificateSubjectMatches: (ctx: KoaContext, property: string, expected: string) => {
          const certificate = peerCertificate(ctx.socket)
          return property === 'tls_client_auth_san_uri' && certificate !== undefined && uris(certificate).includes(expected)
        },
      },
    },
  })
  const oidc = provider.callback()

  const body = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    let text = ''
    for await (const chunk of req) {
      text += chunk
      if (text.length > 4096) throw new Error('body too large')
    }
    return JSON.parse(text) as Record<string, unknown>
  }
  const reply = (res: ServerResponse, status: number, message = '') => {
    res.writeHead(status, { 'content-type': 'text/plain' })
    res.end(message)
  }
  const callerRole = (req: IncomingMessage): string | undefined => {
    const certificate = peerCertificate(req.socket as TLSSocket)
    const uri = certificate ? uris(certificate)[0] : undefined
    return uri?.startsWith(`${SPIFFE}/`) ? uri.slice(SPIFFE.length + 1).split('/')[0] : undefined
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const route = `${req.method} ${req.url}`
    if (route === 'POST /bench/register') {
      if (callerRole(req) !== 'operator') return reply(res, 403, 'operator only')
      void body(req).then(
        async ({ login_hint: loginHint, password }) => {
          if (typeof loginHint !== 'string' || typeof password !== 'string') return reply(res, 400, 'login_hint and password are required')
          passwords.set(loginHint, await hashPassword(password))
          reply(res, 204)
        },
        () => reply(res, 400, 'invalid body'),
      )
      return
    }
    if (route === 'POST /device/approve') {
      if (callerRole(req) !== 'terminal') return reply(res, 403, 'terminal only')
      void body(req)
        .then(async ({ auth_req_id: id, password }) => {
          if (typeof id !== 'string' || typeof password !== 'string') return reply(res, 400, 'auth_req_id and password are required')
          const request = await provider.BackchannelAuthenticationRequest.find(id)
          if (!request) return reply(res, 404, 'no such request')
          const phc = passwords.get(request.accountId)
          if (!phc || !(await verifyPassword(phc, password))) {
            await provider.backchannelResult(request, new errors.AccessDenied('the password did not match'))
            return reply(res, 403, 'rejected')
          }
          const grant = new provider.Grant({ accountId: request.accountId, clientId: request.clientId })
          grant.addOIDCScope(request.scope)
          await grant.save()
          await provider.backchannelResult(request, grant, { authTime: Math.floor(Date.now() / 1000) })
          reply(res, 204)
        })
        .catch(() => reply(res, 500, 'approval failed'))
      return
    }
    oidc(req, res)
  })
  process.send?.({ listening: port })
  process.on('SIGTERM', () => server.close(() => process.exit(0)))
  process.on('disconnect', () => process.exit(0))
}

await main()
