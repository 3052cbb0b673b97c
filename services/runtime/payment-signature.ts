// Payment results are signed by the platform with its service key and checked by
// PaymentManagement against the certificate the platform presented on the same mTLS connection:
// the result's fields cannot be altered by anything that stores or relays them.
import { createPublicKey, sign, verify, X509Certificate } from 'node:crypto'

export interface PaymentResultFields {
  readonly platformId: string
  readonly serialNumber: string
  readonly result: string
  readonly currencyCode: string
  readonly amountMinor: bigint
  readonly completeTime: string
}

function message(fields: PaymentResultFields): Buffer {
  return Buffer.from(
    ['cloudpay-payment-result-v1', fields.platformId, fields.serialNumber, fields.result, fields.currencyCode, fields.amountMinor.toString(), fields.completeTime].join('\n'),
  )
}

export function signPaymentResult(privateKeyPem: string, fields: PaymentResultFields): string {
  return sign('sha256', message(fields), privateKeyPem).toString('base64url')
}

export function verifyPaymentResult(certificateDer: Buffer, fields: PaymentResultFields, signature: string): boolean {
  try {
    const key = createPublicKey(new X509Certificate(certificateDer).publicKey.export({ type: 'spki', format: 'pem' }))
    return verify('sha256', message(fields), key, Buffer.from(signature, 'base64url'))
  } catch {
    return false
  }
}
