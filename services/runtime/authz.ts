// Per-RPC authorization, default deny, enforced by one server interceptor before any handler runs.
// Identity comes only from the verified peer certificate. Field-level rules (an instance acts only
// for its own device id...) are checked in the handler, where the request is decoded.
import { type Metadata, type ServerInterceptor, ServerInterceptingCall } from '@grpc/grpc-js'
import type { PeerCertificate } from 'node:tls'
import { PermissionDeniedError, quote, toServiceStatus, UnauthenticatedError } from './errors.ts'
import { formatIdentity, type Identity, identityFromPeerCertificate, peerIdentityProblem, type Role } from './identity.ts'

export interface Rule {
  /** Roles that may call the RPC. */
  readonly roles: readonly Role[]
  /** For role `service`: only these services (by name). Unset means any service. */
  readonly services?: readonly string[]
  /** Which objects an admitted caller may touch (checked by the handler), in words; see OBJECT_RULES. */
  readonly objects?: string
}

/**
 * The object rules handlers enforce once the role rule admitted a call, named once so the rule
 * tables, the handlers and docs/authorization.md say the same thing.
 */
export const OBJECT_RULES = {
  ownDevice: 'an instance only for its own device_id',
  deviceAccess: 'an instance only for its own device_id; a terminal only for a device it has an open channel to',
  channelDevice: 'a terminal only for a device it has an open channel to',
  ownTerminal: 'a terminal only its own channels',
  prepayTerminal: 'a terminal only for a transaction prepaid for it, while PaymentManagement says it may act for the order',
  relayedTerminal: 'only for a transaction prepaid for the terminal_id relayed for, with credentials sealed for that transaction, each blob once',
  prepayKey: "only a result signed with the result key the platform gave for that order's prepay",
  boundedIssuance: 'opening balances at most CLOUDPAY_OPENING_BALANCE_MAX_MINOR',
  publishableKinds: 'an instance for its own device, LOGIN_REQUESTED and PAYMENT_REQUESTED only; each service only the kinds it answers with',
  enrollingTerminal: 'a terminal only itself (its certificate id), after proving the account password as a login does',
  accountTerminals: "an enrolled terminal only its own account's terminals; an operator any account's",
  ownTerminalStream: 'a terminal only its own stream (chosen by its certificate), and only while enrolled',
  terminalKinds: 'payment-management PAYMENT_PUSHED and ORDER_CLAIMED_ELSEWHERE only; account-management TERMINAL_REMOVED only; payment-platform OFFLINE_CODE_REDEEMED only',
  orderOrClaim: "as for the order's device: its own instance, a terminal with an open channel to it; or the enrolled terminal that claimed the order",
  orderAccountTerminal: "a terminal enrolled in the account the order's device is assigned to now",
  payeeHolder: "only the payee's registered holder (its terminal/<id> or service/<name>)",
  offlineProvisioner: "a terminal for itself (it becomes the credential's terminal), with the payer account's payment password, counted and locking as Pay",
  ownCredential: "a terminal only the offline credentials it provisioned; an operator any",
} as const

/** The same rule, with the object rule its handler enforces. */
export const scoped = (rule: Rule, objects: string): Rule => ({ ...rule, objects })

/** One rule for every method key of a generated service definition: a missing one is a type error. */
export type Rules<Definition> = { readonly [Method in keyof Definition]: Rule }

export const allow = (...roles: Role[]): Rule => ({ roles })
export const allowServices = (...services: string[]): Rule => ({ roles: ['service'], services })
export const either = (...rules: Rule[]): Rule => {
  const roles = [...new Set(rules.flatMap((r) => r.roles))]
  const serviceRules = rules.filter((r) => r.roles.includes('service'))
  const anyService = serviceRules.some((r) => r.services === undefined)
  return anyService || serviceRules.length === 0 ? { roles } : { roles, services: serviceRules.flatMap((r) => r.services ?? []) }
}
/** Health and reflection: any valid mesh identity. */
export const ANY_MESH_IDENTITY: Rule = { roles: ['service', 'instance', 'terminal', 'operator'] }

export function permits(rule: Rule, identity: Identity): boolean {
  if (!rule.roles.includes(identity.role)) return false
  if (identity.role === 'service' && rule.services) return rule.services.includes(identity.id)
  return true
}

/** Rules keyed by method path ("/pkg.Service/Method") from a definition and its rules. */
export function rulesByPath<Definition extends Record<string, { path: string }>>(definition: Definition, rules: Rules<Definition>): Map<string, Rule> {
  return new Map(Object.entries(definition).map(([key, method]) => [method.path, rules[key as keyof Definition]]))
}

/**
 * The verified peer certificate each admitted call came with, and the identity read from it,
 * keyed by the call's own metadata object (grpc-js hands the handler the same one): Node parses a
 * certificate anew on every request for it, and the handler wrapper needs both; neither is
 * worked out twice per call.
 */
export interface AdmittedPeer {
  readonly certificate: PeerCertificate
  readonly identity: Identity
}
const admittedPeers = new WeakMap<Metadata, AdmittedPeer>()
export const admittedPeerOf = (metadata: Metadata): AdmittedPeer | undefined => admittedPeers.get(metadata)

export interface AuthorizationEvents {
  onDenied?(path: string, identity: Identity | null, reason: string, details: { code: 'UNAUTHENTICATED' | 'PERMISSION_DENIED'; traceId: string | undefined }): void
}

/** The trace id of the caller's traceparent header, if it sent a well-formed one. */
function callerTraceId(metadata: Metadata): string | undefined {
  const header = metadata.get('traceparent')[0]
  return typeof header === 'string' ? /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(header)?.[1] : undefined
}

export function authorizationInterceptor(rules: ReadonlyMap<string, Rule>, events: AuthorizationEvents = {}): ServerInterceptor {
  return (method, call) =>
    new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const certificate = call.getAuthContext().sslPeerCertificate
            const identity = identityFromPeerCertificate(certificate)
            if (!identity) {
              const problem = peerIdentityProblem(certificate) ?? 'no mesh identity'
              events.onDenied?.(method.path, null, problem, { code: 'UNAUTHENTICATED', traceId: callerTraceId(metadata) })
              call.sendStatus(toServiceStatus(new UnauthenticatedError('NO_MESH_IDENTITY', `the client certificate is no mesh identity: ${problem}`)).status)
              return
            }
            const rule = rules.get(method.path)
            if (!rule || !permits(rule, identity)) {
              events.onDenied?.(method.path, identity, rule ? 'role not allowed' : 'no rule', { code: 'PERMISSION_DENIED', traceId: callerTraceId(metadata) })
              const error = new PermissionDeniedError('ROLE_NOT_ALLOWED', `${formatIdentity(identity)} may not call ${method.path.slice(1)}`, {
                caller: formatIdentity(identity),
                method: method.path.slice(1),
              })
              call.sendStatus(toServiceStatus(error).status)
              return
            }
            admittedPeers.set(metadata, { certificate: certificate!, identity })
            mdNext(metadata)
          },
        })
      },
    })
}

/**
 * Field rule for instances: an instance acts only for its own device id. Other roles pass here;
 * their own checks (a terminal's channel) are the caller's job.
 */
export function assertInstanceActsForItself(caller: Identity, deviceId: string, field = 'device_id'): void {
  if (caller.role === 'instance' && caller.id !== deviceId) {
    throw new PermissionDeniedError('NOT_OWN_DEVICE', `instance ${caller.id} may act only for its own device id, not ${field} ${quote(deviceId)}`, {
      field,
    })
  }
}
