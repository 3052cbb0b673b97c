// The development certificate authority: created on first start under <home>/certs, it issues one
// certificate per mesh identity. Production points CLOUDPAY_TLS_* at its own CA and files instead.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { randomBytes, webcrypto } from 'node:crypto'

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair
import { existsSync } from 'node:fs'
import { mkdir, readFile, rename, rmdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Identity, ID_PATTERN, spiffeUri } from './identity.ts'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const CA_YEARS = 10
const LEAF_DAYS = 397

export interface CertificatePaths {
  readonly caFile: string
  readonly certFile: string
  readonly keyFile: string
}

export function certsDir(home: string): string {
  return join(home, 'certs')
}

export function certificatePaths(home: string, identity: Identity): CertificatePaths {
  const dir = certsDir(home)
  const base = `${identity.role}-${identity.id}`
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, `${base}.crt`), keyFile: join(dir, `${base}.key`) }
}

/** Creates the CA (once) and the identity's certificate (once); returns the paths. */
export async function ensureDevCertificate(home: string, identity: Identity): Promise<CertificatePaths> {
  if (!ID_PATTERN.test(identity.id)) throw new Error(`invalid identity id ${JSON.stringify(identity.id)}`)
  const paths = certificatePaths(home, identity)
  if (existsSync(paths.certFile) && existsSync(paths.keyFile) && existsSync(paths.caFile)) return paths
  await withCertsLock(home, async () => {
    const ca = await loadOrCreateCa(home)
    if (existsSync(paths.certFile) && existsSync(paths.keyFile)) return
    const { certPem, keyPem } = await issueLeaf(ca, identity)
    await writeAtomically(paths.keyFile, keyPem, 0o600)
    await writeAtomically(paths.certFile, certPem, 0o644)
  })
  return paths
}

/** Replaces an identity's certificate and key with new ones (rotation), each file atomically. */
export async function reissueDevCertificate(home: string, identity: Identity): Promise<CertificatePaths> {
  const paths = certificatePaths(home, identity)
  await withCertsLock(home, async () => {
    const { certPem, keyPem } = await issueLeaf(await loadOrCreateCa(home), identity)
    await writeAtomically(paths.keyFile, keyPem, 0o600)
    await writeAtomically(paths.certFile, certPem, 0o644)
  })
  return paths
}

interface CertificateAuthority {
  readonly cert: x509.X509Certificate
  readonly privateKey: CryptoKey
}

async function loadOrCreateCa(home: string): Promise<CertificateAuthority> {
  const certFile = join(certsDir(home), 'ca.crt')
  const keyFile = join(certsDir(home), 'ca.key')
  if (existsSync(certFile) && existsSync(keyFile)) {
    const cert = new x509.X509Certificate(await readFile(certFile, 'utf8'))
    const der = x509.PemConverter.decodeFirst(await readFile(keyFile, 'utf8'))
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign'])
    return { cert, privateKey: privateKey as CryptoKey }
  }
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair
  const notBefore = new Date(Date.now() - 60_000)
  const notAfter = new Date(notBefore.getTime() + CA_YEARS * 365 * 86_400_000)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: `CN=cloudpay development CA ${randomBytes(4).toString('hex')}, O=cloudpay`,
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  await writeAtomically(keyFile, x509.PemConverter.encode(keyDer, 'PRIVATE KEY'), 0o600)
  await writeAtomically(certFile, cert.toString('pem'), 0o644)
  return { cert, privateKey: keys.privateKey }
}

/**
 * Issues a new certificate and key for an identity under another file name (`<role>-<id>.<label>`),
 * never touching the files a running party uses: handing out a fresh identity never hands out a
 * live key. `asCa` makes a CA:true certificate, for testing that such a certificate is refused.
 */
export async function issueSeparateDevCertificate(home: string, identity: Identity, label: string, options: { asCa?: boolean } = {}): Promise<CertificatePaths> {
  if (!/^[a-z0-9-]{1,32}$/.test(label)) throw new Error(`invalid certificate label ${JSON.stringify(label)}`)
  const live = certificatePaths(home, identity)
  const paths = { caFile: live.caFile, certFile: live.certFile.replace(/\.crt$/, `.${label}.crt`), keyFile: live.keyFile.replace(/\.key$/, `.${label}.key`) }
  await withCertsLock(home, async () => {
    const { certPem, keyPem } = await issueLeaf(await loadOrCreateCa(home), identity, options.asCa)
    await writeAtomically(paths.keyFile, keyPem, 0o600)
    await writeAtomically(paths.certFile, certPem, 0o644)
  })
  return paths
}

async function issueLeaf(ca: CertificateAuthority, identity: Identity, asCa = false): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair
  const notBefore = new Date(Date.now() - 60_000)
  const notAfter = new Date(notBefore.getTime() + LEAF_DAYS * 86_400_000)
  // Exactly one URI SAN (the identity). Services also get loopback names so clients can verify them.
  const names: x509.JsonGeneralName[] = [{ type: 'url', value: spiffeUri(identity) }]
  if (identity.role === 'service') {
    names.push({ type: 'dns', value: 'localhost' }, { type: 'dns', value: identity.id }, { type: 'ip', value: '127.0.0.1' }, { type: 'ip', value: '::1' })
  }
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: `CN=${identity.role}/${identity.id}, O=cloudpay`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingKey: ca.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(asCa, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement | (asCa ? x509.KeyUsageFlags.keyCertSign : 0), true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  })
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(keyDer, 'PRIVATE KEY') }
}

function serialNumber(): string {
  const bytes = randomBytes(16)
  bytes[0] = bytes[0]! & 0x7f // positive
  return bytes.toString('hex')
}

async function writeAtomically(file: string, contents: string, mode: number): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(temp, contents, { mode })
  await rename(temp, file)
}

/** Several processes may start at once (one per service): one of them creates, the others wait. */
async function withCertsLock(home: string, work: () => Promise<void>): Promise<void> {
  const dir = certsDir(home)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const lock = join(dir, '.lock')
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      await mkdir(lock)
      break
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs
      if (age > 30_000) await rmdir(lock).catch(() => undefined) // left by a crashed process
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`)
      await sleep(50)
    }
  }
  try {
    await work()
  } finally {
    await rmdir(lock).catch(() => undefined)
  }
}
