// What a verified peer certificate must be to stand for a mesh identity: a leaf (CA:false, no
// keyCertSign or cRLSign), so a CA certificate the mesh CA signed, which TLS happily accepts
// as a client certificate, can never act as a party. Parsed once per certificate.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

const verdicts = new Map<string, string | null>()
const MAX_REMEMBERED = 4096

/** Why this DER certificate cannot be a mesh identity, or null when it is a proper leaf. */
export function leafProblem(der: Buffer): string | null {
  const key = der.toString('base64')
  const known = verdicts.get(key)
  if (known !== undefined) return known
  const verdict = inspect(der)
  if (verdicts.size >= MAX_REMEMBERED) verdicts.delete(verdicts.keys().next().value!)
  verdicts.set(key, verdict)
  return verdict
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
