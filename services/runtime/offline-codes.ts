// Offline payment codes sealed to the payee (docs/design.md): the payee code a payee shows, the
// payment code a terminal makes offline, and the MAC the platform checks. Both ends are here so
// they cannot drift: the platform's (sign a payee key, check a MAC) and the terminal's and
// payee's (check a payee code offline, seal, open). No network anywhere in this file.
import { createHmac, type KeyObject, timingSafeEqual, type webcrypto } from 'node:crypto'
import { OfflinePaymentCode, OfflinePaymentCodeBody, PayeeCode } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { keyStatement, openFrom, type PublishedKey, SEALING_PUBLIC_KEY_BYTES, sealTo, signStatement, verifyPlatformChain, verifyStatement } from './sealed-box.ts'

type CryptoKey = webcrypto.CryptoKey

export const PAYEE_CODE_PREFIX = 'cppayee1.'
export const PAYMENT_CODE_PREFIX = 'cppay1.'
/** The largest opened code RedeemOfflineCode takes (a real one is ~150 bytes). */
export const MAX_OPENED_CODE_BYTES = 1024
const MAX_CODE_TEXT = 4096
const INFO = new TextEncoder().encode('cloudpay-offline-payment-code-v1')
const MAC_LABEL = Buffer.from('cloudpay-offline-code-v1\0')

/** A code or payee code the terminal or payee must not use, and why. */
export class OfflineCodeRefused extends Error {}

/** What a payee code says once checked: whose key it is, in which currency. */
export interface VerifiedPayee {
  readonly platformId: string
  readonly payeeId: string
  readonly currencyCode: string
  readonly key: PublishedKey
}

/** The exact bytes the platform signs for a payee key (the sealing keys' statement, naming the payee and its currency). */
export function payeeKeyStatement(payee: Omit<VerifiedPayee, 'key'>, key: PublishedKey): Buffer {
  return keyStatement('cloudpay-payee-key-v1', [payee.platformId, payee.payeeId, payee.currencyCode], key)
}

/** Platform side: the payee code for a payee's key, signed with the platform service's TLS key. */
export function signedPayeeCode(tlsPrivateKey: KeyObject, payee: Omit<VerifiedPayee, 'key'>, key: PublishedKey): PayeeCode {
  return {
    platformId: payee.platformId,
    payeeId: payee.payeeId,
    currencyCode: payee.currencyCode,
    key: { keyId: key.keyId, publicKey: Buffer.from(key.publicKey), notAfter: key.notAfter },
    signature: signStatement(tlsPrivateKey, payeeKeyStatement(payee, key)),
  }
}

export const payeeCodeText = (code: PayeeCode): string => PAYEE_CODE_PREFIX + Buffer.from(PayeeCode.encode(code).finish()).toString('base64url')

function decodeText<T>(text: string, prefix: string, decode: (bytes: Uint8Array) => T, what: string): T {
  const trimmed = text.trim()
  if (!trimmed.startsWith(prefix) || trimmed.length > MAX_CODE_TEXT || !/^[A-Za-z0-9_-]+$/.test(trimmed.slice(prefix.length))) {
    throw new OfflineCodeRefused(`this is not a ${what} (it must start with ${prefix})`)
  }
  try {
    return decode(Buffer.from(trimmed.slice(prefix.length), 'base64url'))
  } catch {
    throw new OfflineCodeRefused(`this ${what} cannot be read`)
  }
}

/**
 * Terminal side, offline: the payee a payee code names, once its signature is checked against
 * the platform certificate chain cached at provisioning (itself checked against the mesh CA as
 * the sealing keys are), for the platform the credential is at. Refuses (OfflineCodeRefused) a
 * code of another platform, signed by anyone else, altered, or whose key is past not_after.
 */
export function verifyPayeeCode(
  text: string,
  trust: { readonly platformId: string; readonly certificateChain: readonly Uint8Array[]; readonly caCertificates: string | Buffer; readonly now?: Date },
): VerifiedPayee {
  const now = trust.now ?? new Date()
  const refuse = (problem: string): never => {
    throw new OfflineCodeRefused(`the payee code is refused: ${problem}`)
  }
  const code = decodeText(text, PAYEE_CODE_PREFIX, (bytes) => PayeeCode.decode(bytes), 'payee code')
  if (code.platformId !== trust.platformId) refuse(`it is a payee of another platform (${JSON.stringify(code.platformId.slice(0, 64))}) than the credential's`)
  if (!code.key?.notAfter) refuse('it carries no key')
  const key: PublishedKey = { keyId: code.key!.keyId, publicKey: Buffer.from(code.key!.publicKey), notAfter: code.key!.notAfter! }
  if (key.publicKey.length !== SEALING_PUBLIC_KEY_BYTES) refuse(`its key is not a ${SEALING_PUBLIC_KEY_BYTES}-byte X25519 public key`)
  const leaf = verifyPlatformChain(trust.certificateChain, trust.caCertificates, now, refuse)
  const payee = { platformId: code.platformId, payeeId: code.payeeId, currencyCode: code.currencyCode }
  if (!verifyStatement(leaf, payeeKeyStatement(payee, key), code.signature)) refuse('its signature was not made by the platform')
  if (key.notAfter <= now) refuse(`its key expired at ${key.notAfter.toISOString()}; ask the payee for its current code`)
  return { ...payee, key }
}

/** The associated data a code is sealed with: `offline|<platform>|<payee>|<key id>` (no part holds a `|`). */
export const offlineAad = (platformId: string, payeeId: string, keyId: string): Uint8Array => new TextEncoder().encode(['offline', platformId, payeeId, keyId].join('|'))

/** HMAC-SHA-256 with the credential secret over the label and the body's exact bytes. */
export function codeMac(secret: Uint8Array, body: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(MAC_LABEL).update(body).digest()
}

/** Platform side: whether `mac` authenticates `body` under `secret` (constant time). */
export function macMatches(secret: Uint8Array, body: Uint8Array, mac: Uint8Array): boolean {
  const expected = codeMac(secret, body)
  return mac.length === expected.length && timingSafeEqual(expected, mac)
}

/** Terminal side, offline: authenticates a body with the credential secret and seals it to the payee's key; the shown text. */
export async function sealPaymentCode(body: OfflinePaymentCodeBody, secret: Uint8Array, payee: VerifiedPayee): Promise<string> {
  const bodyBytes = OfflinePaymentCodeBody.encode(body).finish()
  const plaintext = OfflinePaymentCode.encode({ body: Buffer.from(bodyBytes), mac: codeMac(secret, bodyBytes) }).finish()
  const sealed = await sealTo(payee.key.publicKey, plaintext, offlineAad(payee.platformId, payee.payeeId, payee.key.keyId), INFO)
  return PAYMENT_CODE_PREFIX + sealed.toString('base64url')
}

/** A payee's own key pair (the private half never leaves it). */
export interface PayeeKeyPair {
  readonly keyId: string
  readonly privateKey: CryptoKey
}

/**
 * Payee side: opens a shown code with whichever of its keys it was sealed to, for this payee
 * only. The opened bytes (an encoded OfflinePaymentCode) are what RedeemOfflineCode takes.
 * OfflineCodeRefused when it is no code, was sealed to another payee, or was altered.
 */
export async function openPaymentCode(text: string, payee: { readonly platformId: string; readonly payeeId: string; readonly keys: readonly PayeeKeyPair[] }): Promise<Uint8Array> {
  const sealed = decodeText(text, PAYMENT_CODE_PREFIX, (bytes): Uint8Array => Buffer.from(bytes), 'payment code')
  for (const key of payee.keys) {
    const opened = await openFrom(key.privateKey, sealed, offlineAad(payee.platformId, payee.payeeId, key.keyId), INFO)
    if ('plaintext' in opened) return opened.plaintext
  }
  throw new OfflineCodeRefused(`the payment code cannot be opened by payee ${payee.payeeId}: it was sealed to another payee, to a key it no longer has, or altered`)
}

/** Reads an opened code's body (for display; the platform trusts it only after the MAC). */
export function readOpenedCode(opened: Uint8Array): { readonly body: OfflinePaymentCodeBody; readonly bodyBytes: Uint8Array; readonly mac: Uint8Array } {
  const code = OfflinePaymentCode.decode(opened)
  return { body: OfflinePaymentCodeBody.decode(code.body), bodyBytes: code.body, mac: code.mac }
}
