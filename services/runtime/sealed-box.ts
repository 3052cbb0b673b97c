// What the sealed relay and the offline payment codes share (docs/design.md): HPKE (RFC 9180,
// @hpke/core) with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM in one framing; the
// platform's signature over a public key it publishes (a sealing key, a payee key) with its
// service TLS key; and the terminal's offline check of that signer against the mesh CA.
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { type KeyObject, sign, verify, type webcrypto, X509Certificate } from 'node:crypto'
import { leafProblem } from './certificate-policy.ts'
import { identityFromSubjectAltName } from './identity.ts'

type CryptoKey = webcrypto.CryptoKey

export const SEALING_SUITE_NAME = 'DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/AES-128-GCM'
/** The largest sealed blob either side takes (a real one is a few hundred bytes). */
export const MAX_SEALED_BYTES = 4096
/** The only service whose certificate may vouch for published keys. */
export const KEY_SIGNER = { role: 'service', id: 'payment-platform' } as const

const FORMAT_VERSION = 1
/** X25519: the encapsulated key and a public key are 32 bytes each. */
const ENC_BYTES = 32
export const SEALING_PUBLIC_KEY_BYTES = 32
const HEADER_BYTES = 1 + ENC_BYTES + 2
const AEAD_TAG_BYTES = 16

export const sealingSuite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() })

/**
 * Seals `plaintext` to an X25519 public key. The blob: version byte, HPKE encapsulated key, the
 * associated data's length and bytes (in clear, so a refusal can say what it was sealed for, and
 * a payee can tell which of its keys opens it), ciphertext.
 */
export async function sealTo(publicKey: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, info: Uint8Array): Promise<Buffer> {
  const recipientPublicKey = await sealingSuite.kem.deserializePublicKey(publicKey)
  const { ct, enc } = await sealingSuite.seal({ recipientPublicKey, info }, plaintext, aad)
  const header = Buffer.alloc(HEADER_BYTES)
  header[0] = FORMAT_VERSION
  Buffer.from(enc).copy(header, 1)
  header.writeUInt16BE(aad.length, 1 + ENC_BYTES)
  const blob = Buffer.concat([header, aad, Buffer.from(ct)])
  if (blob.length > MAX_SEALED_BYTES) throw new RangeError(`the sealed bytes would be ${blob.length}, over ${MAX_SEALED_BYTES}`)
  return blob
}

interface Frame {
  readonly enc: Uint8Array
  readonly aad: Uint8Array
  readonly ciphertext: Uint8Array
}

function parseFrame(blob: Uint8Array): Frame | undefined {
  const data = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  if (data.length < HEADER_BYTES + AEAD_TAG_BYTES || data.length > MAX_SEALED_BYTES || data[0] !== FORMAT_VERSION) return undefined
  const aadLength = data.readUInt16BE(1 + ENC_BYTES)
  if (data.length < HEADER_BYTES + aadLength + AEAD_TAG_BYTES) return undefined
  return {
    enc: data.subarray(1, 1 + ENC_BYTES),
    aad: data.subarray(HEADER_BYTES, HEADER_BYTES + aadLength),
    ciphertext: data.subarray(HEADER_BYTES + aadLength),
  }
}

/** The associated data a blob says it was sealed with (clear text), or undefined when it is no blob. */
export function claimedAad(blob: Uint8Array): Buffer | undefined {
  const frame = parseFrame(blob)
  return frame ? Buffer.from(frame.aad) : undefined
}

async function tryOpen(privateKey: CryptoKey, frame: Frame, aad: Uint8Array, info: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await sealingSuite.open({ recipientKey: privateKey, enc: frame.enc, info }, frame.ciphertext, aad))
  } catch {
    return undefined
  }
}

/** What opening found: the plaintext, or why not (an authentic blob sealed with other associated data, or anything else). */
export type Opened = { readonly plaintext: Uint8Array } | { readonly problem: 'unreadable' } | { readonly problem: 'aad-mismatch'; readonly claimed: Buffer }

/** Opens a blob with `privateKey`, holding it to `expectedAad` (what the opener's own records say it must be for). */
export async function openFrom(privateKey: CryptoKey, blob: Uint8Array, expectedAad: Uint8Array, info: Uint8Array): Promise<Opened> {
  const frame = parseFrame(blob)
  if (!frame) return { problem: 'unreadable' }
  const claimed = Buffer.from(frame.aad)
  if (!claimed.equals(Buffer.from(expectedAad))) {
    // Only to say why: the blob is refused either way.
    return (await tryOpen(privateKey, frame, frame.aad, info)) ? { problem: 'aad-mismatch', claimed } : { problem: 'unreadable' }
  }
  const plaintext = await tryOpen(privateKey, frame, expectedAad, info)
  return plaintext ? { plaintext } : { problem: 'unreadable' }
}

/** A public key the platform publishes (a sealing key, a payee key). */
export interface PublishedKey {
  readonly keyId: string
  /** 32 bytes (X25519, as HPKE serializes it). */
  readonly publicKey: Uint8Array
  readonly notAfter: Date
}

/**
 * The exact bytes the platform signs for a published key: the statement's label, the suite, the
 * lines naming whose key it is (a platform id; a platform id, payee id and currency), key id,
 * public key (base64url) and not_after, joined by line feeds.
 */
export function keyStatement(label: string, subject: readonly string[], key: PublishedKey): Buffer {
  return Buffer.from([label, SEALING_SUITE_NAME, ...subject, key.keyId, Buffer.from(key.publicKey).toString('base64url'), key.notAfter.toISOString()].join('\n'))
}

const digestFor = (key: KeyObject): string | null => (key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256')

/** Platform side: the signature over one statement, with the platform service's TLS key. */
export function signStatement(tlsPrivateKey: KeyObject, statement: Buffer): Buffer {
  return sign(digestFor(tlsPrivateKey), statement, tlsPrivateKey)
}

/** Terminal side: whether `signature` over `statement` was made by `signer`'s key. */
export function verifyStatement(signer: X509Certificate, statement: Buffer, signature: Uint8Array): boolean {
  try {
    return verify(digestFor(signer.publicKey), statement, signer.publicKey, Buffer.from(signature))
  } catch {
    return false
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The certificates of a PEM bundle (the mesh CA file may hold more than one, e.g. while the CA rotates). */
function certificatesOf(pem: string | Buffer): X509Certificate[] {
  const blocks = pem.toString().match(PEM_CERTIFICATE) ?? []
  return blocks.map((block) => new X509Certificate(block))
}

/**
 * Terminal side, offline: the platform certificate of `chain` (DER, leaf first), or `refuse`'s
 * throw. The leaf must be a leaf (never a CA certificate), valid at `now`, naming
 * spiffe://cloudpay.local/service/payment-platform as its one URI SAN and chaining (through any
 * intermediates sent) to one of `caCertificates` (PEM: the mesh CA).
 */
export function verifyPlatformChain(chainDer: readonly Uint8Array[], caCertificates: string | Buffer, now: Date, refuse: (problem: string) => never): X509Certificate {
  if (chainDer.length === 0 || chainDer.length > 4) refuse('the certificate chain must hold 1-4 certificates')
  let chain: X509Certificate[] = []
  let anchors: X509Certificate[] = []
  try {
    chain = chainDer.map((der) => new X509Certificate(Buffer.from(der)))
  } catch {
    refuse('a certificate of the chain cannot be parsed')
  }
  try {
    anchors = certificatesOf(caCertificates)
  } catch {
    refuse('the mesh CA file cannot be parsed')
  }
  if (anchors.length === 0) refuse('no mesh CA certificate to check against')
  for (const certificate of chain) {
    if (now < new Date(certificate.validFrom) || now > new Date(certificate.validTo)) refuse(`certificate ${certificate.subject.replaceAll('\n', ', ')} is not valid now`)
  }
  const leaf = chain[0]!
  const notLeaf = leaf.ca ? 'the certificate is a CA certificate (CA:true), not a leaf' : leafProblem(leaf.raw)
  if (notLeaf) refuse(notLeaf)
  const identity = identityFromSubjectAltName(leaf.subjectAltName)
  if (!identity || identity.role !== KEY_SIGNER.role || identity.id !== KEY_SIGNER.id) {
    refuse(`the certificate is not the payment platform's (its one URI SAN must be spiffe://cloudpay.local/service/${KEY_SIGNER.id})`)
  }
  for (let i = 1; i < chain.length; i++) {
    const [subject, issuer] = [chain[i - 1]!, chain[i]!]
    if (!issuer.ca || !subject.checkIssued(issuer) || !subject.verify(issuer.publicKey)) refuse('the certificate chain is broken')
  }
  const top = chain[chain.length - 1]!
  if (!anchors.some((ca) => top.checkIssued(ca) && top.verify(ca.publicKey))) refuse('the certificate does not chain to the mesh CA')
  return leaf
}
