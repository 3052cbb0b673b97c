// The platform's sealing keys (HPKE, DHKEM(X25519, HKDF-SHA256)): what terminals seal payment
// credentials to for the relay through PaymentManagement. Private halves are sealed at rest with
// the data key and never printed or logged. A platform gets a new key when its newest is older
// than the rotation period; a key is accepted until `created + rotation + grace`, so a blob sealed
// just before a rotation still opens. The published list is signed with the platform service's
// TLS key (its certificate rides along), so a terminal can tell the platform's keys from anyone's.
import { createPrivateKey, createPublicKey, type KeyObject, randomUUID, type webcrypto, X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { Kysely } from 'kysely'
import { FailedPreconditionError, InvalidArgumentError, UnavailableError } from '../runtime/errors.ts'
import { type PublicSealingKey, sealingSuite } from '../runtime/sealed-credentials.ts'
import type { Sealer } from '../runtime/sealing.ts'
import type { CertificatePaths } from '../runtime/tls.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Db = Kysely<PlatformDatabase>
type CryptoKey = webcrypto.CryptoKey

export interface SealingPeriods {
  readonly sealingKeyRotationMs: number
  readonly sealingKeyGraceMs: number
}

/** Until when a published key (a sealing key, a payee key) is accepted: made at `created`, replaced after `rotationMs`, accepted `graceMs` longer. */
export const keyNotAfter = (created: Date, rotationMs: number, graceMs: number): Date => new Date(created.getTime() + rotationMs + graceMs)
const notAfterOf = (row: store.SealingKeyRow, periods: SealingPeriods): Date => keyNotAfter(row.created_at, periods.sealingKeyRotationMs, periods.sealingKeyGraceMs)

/** The keys a terminal may seal to now, newest first; a new key is made on first use and on rotation. */
export async function acceptedSealingKeys(db: Db, sealer: Sealer, platformId: string, periods: SealingPeriods, now: Date): Promise<PublicSealingKey[]> {
  const newest = await store.findNewestSealingKey(db, platformId)
  if (!newest || now.getTime() - newest.created_at.getTime() >= periods.sealingKeyRotationMs) {
    // Two replicas rotating at once each make a key; both are published and accepted.
    const pair = await sealingSuite.kem.generateKeyPair()
    const keyId = `sk-${platformId}-${randomUUID()}`
    const privateKey = Buffer.from(await sealingSuite.kem.serializePrivateKey(pair.privateKey))
    await store.insertSealingKey(db, {
      key_id: keyId,
      platform_id: platformId,
      public_key: Buffer.from(await sealingSuite.kem.serializePublicKey(pair.publicKey)),
      sealed_private_key: sealer.seal(privateKey.toString('base64'), keyId),
    })
    privateKey.fill(0)
    privateKeys.set(keyId, pair.privateKey)
  }
  const since = new Date(now.getTime() - periods.sealingKeyRotationMs - periods.sealingKeyGraceMs)
  return (await store.listSealingKeysSince(db, platformId, since)).map((row) => ({ keyId: row.key_id, publicKey: Buffer.from(row.public_key), notAfter: notAfterOf(row, periods) }))
}

const privateKeys = new Map<string, CryptoKey>()

/**
 * The private key that opens blobs sealed to `keyId`, while the platform still accepts it:
 * SEALING_KEY_UNKNOWN for a key this platform never had (another platform's too), and
 * SEALING_KEY_EXPIRED once its grace period is over.
 */
export async function openingKey(db: Db, sealer: Sealer, platformId: string, keyId: string, periods: SealingPeriods, now: Date): Promise<CryptoKey> {
  const row = await store.findSealingKey(db, platformId, keyId)
  if (!row) throw InvalidArgumentError.field('key_id', `is not a sealing key of platform ${platformId}; seal to a key from GetSealingKeys`, 'SEALING_KEY_UNKNOWN')
  const notAfter = notAfterOf(row, periods)
  if (notAfter <= now) {
    throw new FailedPreconditionError('SEALING_KEY_EXPIRED', `sealing key ${keyId} is no longer accepted (since ${notAfter.toISOString()}); fetch the keys again and seal anew`)
  }
  let key = privateKeys.get(keyId)
  if (!key) {
    let raw: Buffer
    try {
      raw = Buffer.from(sealer.open(row.sealed_private_key, keyId), 'base64')
    } catch {
      throw new Error(`sealing key ${keyId} cannot be opened with this process's data key: every replica sharing a database must share CLOUDPAY_DATA_KEY`)
    }
    const opened = await sealingSuite.kem.deserializePrivateKey(raw)
    raw.fill(0)
    privateKeys.set(keyId, opened)
    return opened
  }
  return key
}

/** The platform service's TLS identity, which vouches for the published keys. */
export interface PublishingIdentity {
  /** DER: the service's certificate, then any intermediates (the mesh CA itself left out). */
  readonly chain: Buffer[]
  readonly privateKey: KeyObject
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/**
 * Read from the certificate files each time (they are replaced on rotation); a certificate and
 * key caught mid-replacement (not a pair) is UNAVAILABLE, and the caller's retry finds both new.
 */
export async function publishingIdentity(paths: CertificatePaths): Promise<PublishingIdentity> {
  const [certPem, keyPem] = await Promise.all([readFile(paths.certFile, 'utf8'), readFile(paths.keyFile, 'utf8')])
  const chain = (certPem.match(PEM_CERTIFICATE) ?? []).map((block) => new X509Certificate(block))
  const privateKey = createPrivateKey(keyPem)
  const spki = (key: KeyObject) => key.export({ type: 'spki', format: 'der' })
  if (chain.length === 0 || !spki(chain[0]!.publicKey).equals(spki(createPublicKey(privateKey)))) {
    throw new UnavailableError('CERTIFICATE_ROTATING', 'the platform certificate is being replaced; retry')
  }
  return { chain: chain.map((certificate) => certificate.raw), privateKey }
}
