// Payment credentials a terminal seals to its payment platform, for PaymentManagement to relay
// without being able to read them (docs/design.md, "Sealed relay"): HPKE (RFC 9180, @hpke/core)
// with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM, the transaction's serial number,
// amount, currency and platform as associated data. Both ends are here, so they cannot drift:
// the terminal's (check the published keys offline against the mesh CA, seal) and the
// platform's (sign what it publishes, open).
import { Aes128Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core'
import { type KeyObject, sign, verify, type webcrypto, X509Certificate } from 'node:crypto'
import { SealedPaymentCredentials } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { leafProblem } from './certificate-policy.ts'
import { InvalidArgumentError } from './errors.ts'
import { identityFromSubjectAltName } from './identity.ts'

type CryptoKey = webcrypto.CryptoKey

export const SEALING_SUITE_NAME = 'DHKEM(X25519, HKDF-SHA256)/HKDF-SHA256/AES-128-GCM'
/** The largest sealed blob either side takes (a real one is ~120 bytes). */
export const MAX_SEALED_BYTES = 4096
/** The only service whose certificate may vouch for sealing keys. */
export const SEALING_KEY_SIGNER = { role: 'service', id: 'payment-platform' } as const

const FORMAT_VERSION = 1
/** X25519: the encapsulated key and a public key are 32 bytes each. */
const ENC_BYTES = 32
export const SEALING_PUBLIC_KEY_BYTES = 32
const HEADER_BYTES = 1 + ENC_BYTES + 2
const AEAD_TAG_BYTES = 16
const INFO = new TextEncoder().encode('cloudpay-sealed-payment-credentials-v1')

export const sealingSuite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() })

/** What a blob is sealed for: one transaction of one platform. */
export interface SealedFor {
  readonly serialNumber: string
  readonly amountMinor: bigint
  readonly currencyCode: string
  readonly platformId: string
}

const AAD_PARTS = ['serial number', 'amount', 'currency', 'platform'] as const

/** The associated data: `serial_number|amount_minor|currency_code|platform_id` (no part can hold a `|`). */
export function sealingAad(target: SealedFor): Uint8Array {
  return new TextEncoder().encode([target.serialNumber, target.amountMinor.toString(), target.currencyCode, target.platformId].join('|'))
}

export interface Credentials {
  readonly paymentPassword: string
  /** Only when the person pays from another account than the bound default. */
  readonly payerAccount?: string
}

/**
 * Terminal side: seals credentials to a platform's public key (one verifySealingKeys returned)
 * for the transaction `aad` names. The blob: version byte, HPKE encapsulated key, the associated
 * data's length and bytes (in clear, so a refusal can say what it was sealed for), ciphertext.
 */
export async function sealCredentials(credentials: Credentials, publicKey: Uint8Array, aad: Uint8Array): Promise<Buffer> {
  const recipientPublicKey = await sealingSuite.kem.deserializePublicKey(publicKey)
  const plaintext = SealedPaymentCredentials.encode({ paymentPassword: credentials.paymentPassword, payerAccount: credentials.payerAccount ?? '' }).finish()
  const { ct, enc } = await sealingSuite.seal({ recipientPublicKey, info: INFO }, plaintext, aad)
  const header = Buffer.alloc(HEADER_BYTES)
  header[0] = FORMAT_VERSION
  Buffer.from(enc).copy(header, 1)
  header.writeUInt16BE(aad.length, 1 + ENC_BYTES)
  const blob = Buffer.concat([header, aad, Buffer.from(ct)])
  if (blob.length > MAX_SEALED_BYTES) throw new RangeError(`the sealed credentials would be ${blob.length} bytes, over ${MAX_SEALED_BYTES}`)
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

async function tryOpen(privateKey: CryptoKey, frame: Frame, aad: Uint8Array): Promise<Uint8Array | undefined> {
  try {
    return new Uint8Array(await sealingSuite.open({ recipientKey: privateKey, enc: frame.enc, info: INFO }, frame.ciphertext, aad))
  } catch {
    return undefined
  }
}

const unreadable = () => InvalidArgumentError.field('sealed', 'cannot be opened: it was altered, cut short, or sealed to another key than key_id', 'SEALED_UNREADABLE')

/**
 * Platform side: opens a blob with the private key of the key it names and the associated data
 * of the platform's OWN transaction, so a blob sealed for another serial number, amount,
 * currency or platform never opens. A refusal says which: SEALED_AAD_MISMATCH when the blob is
 * authentic but was sealed for another transaction, SEALED_UNREADABLE for anything else.
 */
export async function openCredentials(privateKey: CryptoKey, blob: Uint8Array, expectedAad: Uint8Array): Promise<SealedPaymentCredentials> {
  const frame = parseFrame(blob)
  if (!frame) throw unreadable()
  const claimed = Buffer.from(frame.aad)
  if (!claimed.equals(Buffer.from(expectedAad))) {
    // Only to say why: the blob is refused either way.
    if (!(await tryOpen(privateKey, frame, frame.aad))) throw unreadable()
    const theirs = claimed.toString('utf8').split('|')
    const ours = Buffer.from(expectedAad).toString('utf8').split('|')
    const differs = AAD_PARTS.filter((_, i) => theirs[i] !== ours[i])
    throw InvalidArgumentError.field('sealed', `was sealed for another transaction (its ${differs.join(', ') || 'associated data'} differs)`, 'SEALED_AAD_MISMATCH')
  }
  const plaintext = await tryOpen(privateKey, frame, expectedAad)
  if (!plaintext) throw unreadable()
  try {
    return SealedPaymentCredentials.decode(plaintext)
  } catch {
    throw InvalidArgumentError.field('sealed', 'opens, but holds no SealedPaymentCredentials message', 'SEALED_UNREADABLE')
  }
}

/** A platform's public sealing key as it publishes it. */
export interface PublicSealingKey {
  readonly keyId: string
  /** 32 bytes (X25519, as HPKE serializes it). */
  readonly publicKey: Uint8Array
  readonly notAfter: Date
}

/** The exact bytes the platform signs for each published key. */
export function sealingKeyStatement(platformId: string, key: PublicSealingKey): Buffer {
  return Buffer.from(
    ['cloudpay-sealing-key-v1', SEALING_SUITE_NAME, platformId, key.keyId, Buffer.from(key.publicKey).toString('base64url'), key.notAfter.toISOString()].join('\n'),
  )
}

const digestFor = (key: KeyObject): string | null => (key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256')

/** Platform side: the signature over one published key, with the platform service's TLS key. */
export function signSealingKey(tlsPrivateKey: KeyObject, platformId: string, key: PublicSealingKey): Buffer {
  return sign(digestFor(tlsPrivateKey), sealingKeyStatement(platformId, key), tlsPrivateKey)
}

/** What GetSealingKeys returns (the generated response type fits). */
export interface PublishedSealingKeys {
  readonly platformId: string
  readonly keys: readonly { readonly keyId: string; readonly publicKey: Uint8Array; readonly notAfter: Date | undefined; readonly signature: Uint8Array }[]
  readonly certificateChain: readonly Uint8Array[]
}

/** A published key list the terminal must not seal to, and why. */
export class SealingKeysRefused extends Error {}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** The certificates of a PEM bundle (the mesh CA file may hold more than one, e.g. while the CA rotates). */
function certificatesOf(pem: string | Buffer): X509Certificate[] {
  const blocks = pem.toString().match(PEM_CERTIFICATE) ?? []
  return blocks.map((block) => new X509Certificate(block))
}

/**
 * Terminal side, offline: the keys of a GetSealingKeys answer that may be sealed to, newest first,
 * or SealingKeysRefused. The first certificate must be a leaf (never a CA certificate), valid now,
 * naming spiffe://cloudpay.local/service/payment-platform as its one URI SAN and chaining (through
 * any intermediates sent) to one of `trust.caCertificates` (PEM: the mesh CA); every key must be
 * signed by it for `trust.platformId`. Keys past their not_after are left out.
 */
export function verifySealingKeys(
  published: PublishedSealingKeys,
  trust: { readonly platformId: string; readonly caCertificates: string | Buffer; readonly now?: Date },
): PublicSealingKey[] {
  const now = trust.now ?? new Date()
  const refuse = (problem: string): never => {
    throw new SealingKeysRefused(`the sealing keys of ${trust.platformId} are refused: ${problem}`)
  }
  if (published.platformId !== trust.platformId) refuse(`they were published for another platform (${JSON.stringify(published.platformId.slice(0, 64))})`)
  if (published.certificateChain.length === 0 || published.certificateChain.length > 4) refuse('the certificate chain must hold 1-4 certificates')
  let chain: X509Certificate[] = []
  let anchors: X509Certificate[] = []
  try {
    chain = published.certificateChain.map((der) => new X509Certificate(Buffer.from(der)))
  } catch {
    refuse('a certificate of the chain cannot be parsed')
  }
  try {
    anchors = certificatesOf(trust.caCertificates)
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
  if (!identity || identity.role !== SEALING_KEY_SIGNER.role || identity.id !== SEALING_KEY_SIGNER.id) {
    refuse(`the certificate is not the payment platform's (its one URI SAN must be spiffe://cloudpay.local/service/${SEALING_KEY_SIGNER.id})`)
  }
  for (let i = 1; i < chain.length; i++) {
    const [subject, issuer] = [chain[i - 1]!, chain[i]!]
    if (!issuer.ca || !subject.checkIssued(issuer) || !subject.verify(issuer.publicKey)) refuse('the certificate chain is broken')
  }
  const top = chain[chain.length - 1]!
  if (!anchors.some((ca) => top.checkIssued(ca) && top.verify(ca.publicKey))) refuse('the certificate does not chain to the mesh CA')
  const keys: PublicSealingKey[] = []
  for (const entry of published.keys) {
    if (!entry.notAfter) refuse(`key ${entry.keyId} has no not_after`)
    const key = { keyId: entry.keyId, publicKey: Buffer.from(entry.publicKey), notAfter: entry.notAfter! }
    if (key.publicKey.length !== SEALING_PUBLIC_KEY_BYTES) refuse(`key ${key.keyId} is not a ${SEALING_PUBLIC_KEY_BYTES}-byte X25519 public key`)
    let genuine = false
    try {
      genuine = verify(digestFor(leaf.publicKey), sealingKeyStatement(trust.platformId, key), leaf.publicKey, Buffer.from(entry.signature))
    } catch {
      genuine = false
    }
    if (!genuine) refuse(`the signature over key ${key.keyId} was not made by the certificate sent with it`)
    if (key.notAfter > now) keys.push(key)
  }
  if (keys.length === 0) refuse('no key is still accepted')
  return keys
}
