// Payment results are signed by the platform with a result key of its own (Ed25519, apart from
// its TLS key) and checked by PaymentManagement against the public key the platform returned
// when it created the prepay: the result's fields cannot be altered by anything that stores or
// relays them, and no other key (another platform's, a freshly issued certificate's) verifies.
import { createPublicKey, type KeyObject, sign, verify } from 'node:crypto'
import { remembered } from './remembered.ts'

export interface PaymentResultFields {
  readonly keyId: string
  readonly platformId: string
  readonly serialNumber: string
  readonly result: string
  readonly currencyCode: string
  readonly amountMinor: bigint
  readonly completeTime: string
}

function message(fields: PaymentResultFields): Buffer {
  return Buffer.from(
    ['cloudpay-payment-result-v2', fields.keyId, fields.platformId, fields.serialNumber, fields.result, fields.currencyCode, fields.amountMinor.toString(), fields.completeTime].join(
      '\n',
    ),
  )
}

export function signPaymentResult(privateKey: KeyObject, fields: PaymentResultFields): string {
  return sign(null, message(fields), privateKey).toString('base64url')
}

/**
 * Result public keys parsed once (parsing the DER cost more CPU than the Ed25519 verification itself,
 * profiled): a platform's current key verifies every result of its rotation period.
 */
const resultKeyOf = remembered(256, (spkiBase64: string): KeyObject => createPublicKey({ key: Buffer.from(spkiBase64, 'base64'), format: 'der', type: 'spki' }))

export function verifyPaymentResult(publicKeyDer: Uint8Array, fields: PaymentResultFields, signature: string): boolean {
  try {
    return verify(null, message(fields), resultKeyOf(Buffer.from(publicKeyDer).toString('base64')), Buffer.from(signature, 'base64url'))
  } catch {
    return false
  }
}
