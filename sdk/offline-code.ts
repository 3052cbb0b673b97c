// Offline payment codes on the terminal and at the payee (docs/design.md, "Offline payment codes
// sealed to the payee"). Nothing here touches the network: generation needs only the credential
// the terminal stored while online, the payee code it reads (a string or a scanned QR), the mesh
// CA and the clock; opening needs only the payee's own private keys.
import QRCode from 'qrcode'
import type { Money } from '../gen/cloudpay/common/v1/money.ts'
import type { ProvisionOfflineCredentialResponse } from '../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { OfflineCodeRefused, openPaymentCode, type PayeeKeyPair, readOpenedCode, sealPaymentCode, type VerifiedPayee, verifyPayeeCode } from '../services/runtime/offline-codes.ts'
import { sealingSuite } from '../services/runtime/sealed-box.ts'

export { OfflineCodeRefused, openPaymentCode, readOpenedCode, verifyPayeeCode }
export type { PayeeKeyPair, VerifiedPayee }

/** What the terminal keeps of a provisioned credential (the secret never leaves it). */
export interface StoredCredential {
  readonly platformId: string
  readonly credentialId: string
  readonly secret: Uint8Array
  readonly currencyCode: string
  readonly perCodeCapMinor: bigint
  readonly notBefore: Date
  readonly notAfter: Date
  /** The platform's certificate chain (DER): what payee codes are checked against, offline. */
  readonly certificateChain: readonly Uint8Array[]
  /** The counter the next code gets; strictly increasing. */
  readonly nextCounter: bigint
}

/** The credential to store from ProvisionOfflineCredential's reply. */
export function storedCredential(reply: ProvisionOfflineCredentialResponse): StoredCredential {
  const credential = reply.credential!
  return {
    platformId: credential.platformId,
    credentialId: credential.credentialId,
    secret: Buffer.from(reply.credentialSecret),
    currencyCode: credential.perCodeCap!.currencyCode,
    perCodeCapMinor: credential.perCodeCap!.amountMinor,
    notBefore: credential.notBefore!,
    notAfter: credential.notAfter!,
    certificateChain: reply.certificateChain.map((der) => Buffer.from(der)),
    nextCounter: 1n,
  }
}

export interface GeneratedCode {
  /** What the payee scans: "cppay1." and the sealed bytes in base64url. */
  readonly text: string
  readonly counter: bigint
  readonly payee: VerifiedPayee
  /** The credential with its counter advanced: store it BEFORE showing the code. */
  readonly credential: StoredCredential
}

/**
 * Makes a payment code offline: the payee code is checked against the platform certificate the
 * credential carries (and that against the mesh CA), the amount against the cap, currency and
 * window, then the body is authenticated with the credential secret and sealed to the payee's
 * key. OfflineCodeRefused for anything the platform would refuse anyway.
 */
export async function generateOfflineCode(
  credential: StoredCredential,
  payeeCodeText: string,
  amount: Money,
  trust: { readonly caCertificates: string | Buffer; readonly now?: Date },
): Promise<GeneratedCode> {
  const now = trust.now ?? new Date()
  const payee = verifyPayeeCode(payeeCodeText, { platformId: credential.platformId, certificateChain: credential.certificateChain, caCertificates: trust.caCertificates, now })
  if (amount.currencyCode !== credential.currencyCode || payee.currencyCode !== credential.currencyCode) {
    throw new OfflineCodeRefused(`the credential pays in ${credential.currencyCode}; the amount is in ${amount.currencyCode} and the payee takes ${payee.currencyCode}`)
  }
  if (amount.amountMinor < 1n || amount.amountMinor > credential.perCodeCapMinor)
    throw new OfflineCodeRefused(`the amount must be 1-${credential.perCodeCapMinor} (the per-code cap)`)
  // Only the end is checked here: the phone's clock may run a little behind the platform's, which allows for it.
  if (now >= credential.notAfter) throw new OfflineCodeRefused(`the credential ended at ${credential.notAfter.toISOString()}; provision a new one online`)
  const counter = credential.nextCounter
  const text = await sealPaymentCode(
    { credentialId: credential.credentialId, counter, amount, platformId: payee.platformId, payeeId: payee.payeeId, payeeKeyId: payee.key.keyId, generateTime: now },
    credential.secret,
    payee,
  )
  return { text, counter, payee, credential: { ...credential, nextCounter: counter + 1n } }
}

/** A fresh payee key pair (the payee publishes the public half with PublishPayeeKey, keeps the private one). */
export async function generatePayeeKeyPair(): Promise<{ publicKey: Buffer; privateKey: PayeeKeyPair['privateKey'] }> {
  const pair = await sealingSuite.kem.generateKeyPair()
  return { publicKey: Buffer.from(await sealingSuite.kem.serializePublicKey(pair.publicKey)), privateKey: pair.privateKey }
}

/** A QR of `text` for a terminal (UTF-8 half blocks). */
export function qrForTerminal(text: string): Promise<string> {
  return QRCode.toString(text, { type: 'terminal', small: true, errorCorrectionLevel: 'M' })
}

/** A QR of `text` as a PNG file. */
export function qrPng(text: string, file: string): Promise<void> {
  return QRCode.toFile(file, text, { type: 'png', errorCorrectionLevel: 'M', margin: 2, scale: 4 })
}
