// Who is calling: the SPIFFE-style URI SAN of the verified peer certificate, and nothing else.
import type { PeerCertificate } from 'node:tls'
import { leafProblem } from './certificate-policy.ts'

export const TRUST_DOMAIN = 'cloudpay.local'
export const ROLES = ['service', 'instance', 'terminal', 'operator'] as const
export type Role = (typeof ROLES)[number]

export interface Identity {
  readonly role: Role
  readonly id: string
}

/** Ids inside identities and requests: device ids, terminal ids, service and operator names. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export function spiffeUri(identity: Identity): string {
  return `spiffe://${TRUST_DOMAIN}/${identity.role}/${identity.id}`
}

export function formatIdentity(identity: Identity): string {
  return `${identity.role}/${identity.id}`
}

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value)
}

/** Parses one `spiffe://cloudpay.local/<role>/<id>` URI; null for anything else. */
export function parseSpiffeUri(uri: string): Identity | null {
  const prefix = `spiffe://${TRUST_DOMAIN}/`
  if (!uri.startsWith(prefix)) return null
  const parts = uri.slice(prefix.length).split('/')
  if (parts.length !== 2) return null
  const [role, id] = parts as [string, string]
  if (!isRole(role) || !ID_PATTERN.test(id)) return null
  return { role, id }
}

/**
 * Reads the identity from Node's `subjectaltname` string ("URI:spiffe://…, DNS:localhost").
 * Exactly one URI entry is accepted; Node quotes entries with unusual characters, and such an
 * entry (or a second URI) makes the certificate unusable as a mesh identity.
 */
export function identityFromSubjectAltName(subjectAltName: string | undefined): Identity | null {
  if (!subjectAltName) return null
  const entries = subjectAltName.split(', ')
  if (entries.some((entry) => entry.includes('"'))) return null
  const uris = entries.filter((entry) => entry.startsWith('URI:'))
  if (uris.length !== 1) return null
  return parseSpiffeUri(uris[0]!.slice('URI:'.length))
}

/**
 * The identity of a verified peer certificate: a leaf (never a CA certificate, even one the mesh
 * CA signed) with exactly one URI SAN of the cloudpay trust domain.
 */
export function identityFromPeerCertificate(certificate: PeerCertificate | undefined): Identity | null {
  if (!certificate) return null
  // One connection's certificate is one object for its life (tls.ts): its identity is worked out once.
  let identity = identities.get(certificate)
  if (identity === undefined) {
    identity = peerIdentityProblem(certificate) === null ? identityFromSubjectAltName(certificate.subjectaltname) : null
    identities.set(certificate, identity)
  }
  return identity
}

const identities = new WeakMap<PeerCertificate, Identity | null>()

/** Why a peer certificate stands for no mesh identity (for the refusal and the log), or null. */
export function peerIdentityProblem(certificate: PeerCertificate | undefined): string | null {
  if (!certificate || Object.keys(certificate).length === 0 || !certificate.raw) return 'no client certificate'
  if (certificate.ca) return 'the certificate is a CA certificate (CA:true), not a leaf'
  const problem = leafProblem(certificate.raw)
  if (problem) return problem
  if (!identityFromSubjectAltName(certificate.subjectaltname)) return `the certificate carries no single spiffe://${TRUST_DOMAIN}/<role>/<id> URI SAN`
  return null
}
