// Who is calling: the SPIFFE-style URI SAN of the verified peer certificate, and nothing else.
import type { PeerCertificate } from 'node:tls'

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

export function identityFromPeerCertificate(certificate: PeerCertificate | undefined): Identity | null {
  if (!certificate || Object.keys(certificate).length === 0) return null
  return identityFromSubjectAltName(certificate.subjectaltname)
}
