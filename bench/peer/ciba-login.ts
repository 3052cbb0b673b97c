// One login on the peer (bench/peer/provider.ts) as its two devices make it, over mutual TLS:
// the consumption device (the instance's counterpart) asks for a backchannel authentication and
// polls the token endpoint every POLL_INTERVAL_MS; meanwhile the authentication device (the
// person's phone) sends the password, which the provider verifies with Argon2id before granting.
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:https'
import type { Config } from '../../services/runtime/config.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { certificateFiles } from '../../services/runtime/tls.ts'
import { PEER_CLIENT_ID, PEER_CLIENT_IDENTITY, PEER_DEVICE_IDENTITY, PEER_OPERATOR_IDENTITY } from './identities.ts'

/** Poll mode's cost: the client learns of the approval only at its next poll. */
export const POLL_INTERVAL_MS = 50
const GRANT_TYPE = 'urn:openid:params:grant-type:ciba'

export interface PeerClient {
  register(loginHint: string, password: string): Promise<void>
  /** Resolves once the client holds an ID token for the person. */
  login(loginHint: string, password: string): Promise<void>
  close(): void
}

interface Reply {
  readonly status: number
  readonly body: string
}

export async function peerClient(config: Config, port: number): Promise<PeerClient> {
  const agentFor = async (identity: Identity) => {
    const paths = await certificateFiles(config, identity)
    return new Agent({ keepAlive: true, maxSockets: 256, ca: readFileSync(paths.caFile), cert: readFileSync(paths.certFile), key: readFileSync(paths.keyFile) })
  }
  const [client, device, operator] = await Promise.all([agentFor(PEER_CLIENT_IDENTITY), agentFor(PEER_DEVICE_IDENTITY), agentFor(PEER_OPERATOR_IDENTITY)])
  const post = (agent: Agent, path: string, body: string, type: string): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', servername: 'localhost', port, path, method: 'POST', agent, headers: { 'content-type': type, 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => (text += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const form = (fields: Record<string, string>) => new URLSearchParams({ client_id: PEER_CLIENT_ID, ...fields }).toString()
  const json = (fields: Record<string, string>) => JSON.stringify(fields)
  const expect = (reply: Reply, status: number, what: string): Reply => {
    if (reply.status !== status) throw new Error(`${what}: HTTP ${reply.status} ${reply.body.slice(0, 200)}`)
    return reply
  }

  return {
    async register(loginHint, password) {
      expect(await post(operator, '/bench/register', json({ login_hint: loginHint, password }), 'application/json'), 204, 'register')
    },
    async login(loginHint, password) {
      const started = expect(await post(client, '/backchannel', form({ scope: 'openid', login_hint: loginHint }), 'application/x-www-form-urlencoded'), 200, 'backchannel')
      const { auth_req_id: id } = JSON.parse(started.body) as { auth_req_id: string }
      const approved = post(device, '/device/approve', json({ auth_req_id: id, password }), 'application/json').then((r) => expect(r, 204, 'approve'))
      approved.catch(() => undefined)
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS))
        const token = await post(client, '/token', form({ grant_type: GRANT_TYPE, auth_req_id: id }), 'application/x-www-form-urlencoded')
        if (token.status === 200) {
          if (!(JSON.parse(token.body) as { id_token?: string }).id_token) throw new Error('token response without an ID token')
          await approved
          return
        }
        if (!token.body.includes('authorization_pending')) throw new Error(`token: HTTP ${token.status} ${token.body.slice(0, 200)}`)
      }
    },
    close() {
      for (const agent of [client, device, operator]) agent.destroy()
    },
  }
}
