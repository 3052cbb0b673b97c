// Payment credentials a terminal seals to its payment platform, for PaymentManagement to relay
// without being able to read them (docs/design.md, "Sealed relay"): the shared HPKE framing of
// sealed-box.ts with the transaction's serial number, amount, currency and platform as associated
// data. Both ends are here, so they cannot drift: the terminal's (check the published keys offline
// against the mesh CA, seal) and the platform's (sign what it publishes, open).
import type { KeyObject, webcrypto } from 'node:crypto'
import { SealedPaymentCredentials } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { InvalidArgumentError } from './errors.ts'
import {
  keyStatement,
  KEY_SIGNER,
  openFrom,
  type PublishedKey,
  SEALING_PUBLIC_KEY_BYTES,
  sealTo,
  signStatement,
  verifyPlatformChain,
  verifyStatement,
} from './sealed-box.ts'

export { MAX_SEALED_BYTES, SEALING_PUBLIC_KEY_BYTES, SEALING_SUITE_NAME, sealingSuite } from './sealed-box.ts'

type CryptoKey = webcrypto.CryptoKey

/** The only service whose certificate may vouch for sealing keys. */
export const SEALING_KEY_SIGNER = KEY_SIGNER

const INFO = new TextEncoder().encode('cloudpay-sealed-payment-credentials-v1')

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
  const plaintext = SealedPaymentCredentials.encode({ paymentPassword: credentials.paymentPassword, payerAccount: credentials.payerAccount ?? '' }).finish()
  return sealTo(publicKey, plaintext, aad, INFO)
}

const unreadable = () => InvalidArgumentError.field('sealed', 'cannot be opened: it was altered, cut short, or sealed to another key than key_id', 'SEALED_UNREADABLE')

/**
 * Platform side: opens a blob with the private key of the key it names and the associated data
 * of the platform's OWN transaction, so a blob sealed for another serial number, amount,
 * currency or platform never opens. A refusal says which: SEALED_AAD_MISMATCH when the blob is
 * authentic but was sealed for another transaction, SEALED_UNREADABLE for anything else.
 */
export async function openCredentials(privateKey: CryptoKey, blob: Uint8Array, expectedAad: Uint8Array): Promise<SealedPaymentCredentials> {
  const opened = await openFrom(privateKey, blob, expectedAad, INFO)
  if ('problem' in opened) {
    if (opened.problem === 'unreadable') throw unreadable()
    const theirs = opened.claimed.toString('utf8').split('|')
    const ours = Buffer.from(expectedAad).toString('utf8').split('|')
    const differs = AAD_PARTS.filter((_, i) => theirs[i] !== ours[i])
    throw InvalidArgumentError.field('sealed', `was sealed for another transaction (its ${differs.join(', ') || 'associated data'} differs)`, 'SEALED_AAD_MISMATCH')
  }
  try {
    return SealedPaymentCredentials.decode(opened.plaintext)
  } catch {
    throw InvalidArgumentError.field('sealed', 'opens, but holds no SealedPaymentCredentials message', 'SEALED_UNREADABLE')
  }
}

/** A platform's public sealing key as it publishes it. */
export type PublicSealingKey = PublishedKey

/** The exact bytes the platform signs for each published key. */
export function sealingKeyStatement(platformId: string, key: PublicSealingKey): Buffer {
  return keyStatement('cloudpay-sealing-key-v1', [platformId], key)
}

/** Platform side: the signature over one published key, with the platform service's TLS key. */
export function signSealingKey(tlsPrivateKey: KeyObject, platformId: string, key: PublicSealingKey): Buffer {
  return signStatement(tlsPrivateKey, sealingKeyStatement(platformId, key))
}

/** What GetSealingKeys returns (the generated response type fits). */
export interface PublishedSealingKeys {
  readonly platformId: string
  readonly keys: readonly { readonly keyId: string; readonly publicKey: Uint8Array; readonly notAfter: Date | undefined; readonly signature: Uint8Array }[]
  readonly certificateChain: readonly Uint8Array[]
}

/** A published key list the terminal must not seal to, and why. */
export class SealingKeysRefused extends Error {}

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
  const leaf = verifyPlatformChain(published.certificateChain, trust.caCertificates, now, refuse)
  const keys: PublicSealingKey[] = []
  for (const entry of published.keys) {
    if (!entry.notAfter) refuse(`key ${entry.keyId} has no not_after`)
    const key = { keyId: entry.keyId, publicKey: Buffer.from(entry.publicKey), notAfter: entry.notAfter! }
    if (key.publicKey.length !== SEALING_PUBLIC_KEY_BYTES) refuse(`key ${key.keyId} is not a ${SEALING_PUBLIC_KEY_BYTES}-byte X25519 public key`)
    if (!verifyStatement(leaf, sealingKeyStatement(trust.platformId, key), entry.signature)) refuse(`the signature over key ${key.keyId} was not made by the certificate sent with it`)
    if (key.notAfter > now) keys.push(key)
  }
  if (keys.length === 0) refuse('no key is still accepted')
  return keys
}
