// What a verified peer certificate must be to stand for a mesh identity: a leaf (CA:false, no
// keyCertSign or cRLSign), so a CA certificate the mesh CA signed, which TLS happily accepts
// as a client certificate, can never act as a party. Parsed once per certificate.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { remembered } from './remembered.ts'

/** Verdicts by certificate (base64 DER): a mesh has few, each seen on every connection it opens. */
const verdictOf = remembered(4096, (base64: string) => inspect(Buffer.from(base64, 'base64')))

/** Why this DER certificate cannot be a mesh identity, or null when it is a proper leaf. */
export function leafProblem(der: Buffer): string | null {
  return verdictOf(der.toString('base64'))
}

function inspect(der: Buffer): string | null {
  let cert: x509.X509Certificate
  try {
    cert = new x509.X509Certificate(der)
  } catch {
    return 'the certificate cannot be parsed'
  }
  const constraints = cert.getExtension(x509.BasicConstraintsExtension)
  if (constraints?.ca) return 'the certificate is a CA certificate (CA:true), not a leaf'
  const usages = cert.getExtension(x509.KeyUsagesExtension)
  if (usages && (usages.usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) {
    return 'the certificate may sign certificates (keyCertSign), so it is not a leaf'
  }
  return null
}
