// The platform's payment-result signing keys: Ed25519 (deterministic, so one result always has
// one signature), apart from the TLS key, private halves sealed at rest and never printed or
// logged. A platform gets a new key when its newest is older than the rotation period; every
// transaction keeps the key it was created with until its result is delivered.
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { originOf } from '../runtime/database.ts'
import type { Sealer } from '../runtime/sealing.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Db = Kysely<PlatformDatabase>

export interface PublicResultKey {
  readonly keyId: string
  /** DER SubjectPublicKeyInfo. */
  readonly publicKey: Buffer
}

/** The key new transactions of a platform are signed with (made on first use and on rotation). */
export async function currentResultKey(db: Db, sealer: Sealer, platformId: string, rotationMs: number, now: Date): Promise<PublicResultKey> {
  // A key stays current for its rotation period: read once per period, not once per transaction
  // (only a key read is remembered: one made here may still roll back with its transaction).
  const known = currentKeys(db).get(platformId)
  if (known && now.getTime() - known.createdAt.getTime() < rotationMs && now >= known.createdAt) return known.key
  const newest = await store.findNewestResultKey(db, platformId)
  if (newest && now.getTime() - newest.created_at.getTime() < rotationMs) {
    const key = { keyId: newest.key_id, publicKey: Buffer.from(newest.public_key) }
    currentKeys(db).set(platformId, { key, createdAt: newest.created_at })
    return key
  }
  const { publicKey, privateKey } = generateKeyPairSync('ed25519')
  const keyId = `rk-${platformId}-${randomUUID()}`
  const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'der' })
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  // Two replicas rotating at once each make a key; both are valid, each transaction names its own.
  await store.insertResultKey(db, { key_id: keyId, platform_id: platformId, public_key: spki, sealed_private_key: sealer.seal(pkcs8.toString('base64'), keyId) })
  return { keyId, publicKey: spki }
}

/** Each replica's current key per platform, as last read or made (by database view: one per replica). */
const current = new WeakMap<object, Map<string, { key: PublicResultKey; createdAt: Date }>>()
function currentKeys(db: Db): Map<string, { key: PublicResultKey; createdAt: Date }> {
  const replica = originOf(db) ?? db // inside a transaction: the view it was opened on
  let keys = current.get(replica)
  if (!keys) current.set(replica, (keys = new Map()))
  return keys
}

const privateKeys = new Map<string, KeyObject>()

/** The private key of a result key, for signing (kept in memory once opened). */
export async function signingKey(db: Db, sealer: Sealer, keyId: string): Promise<KeyObject> {
  let key = privateKeys.get(keyId)
  if (!key) {
    const row = await store.findResultKey(db, keyId)
    if (!row) throw new Error(`result key ${keyId} is missing`)
    let pkcs8: string
    try {
      pkcs8 = sealer.open(row.sealed_private_key, keyId)
    } catch {
      throw new Error(`result key ${keyId} cannot be opened with this process's data key: every replica sharing a database must share CLOUDPAY_DATA_KEY`)
    }
    key = createPrivateKey({ key: Buffer.from(pkcs8, 'base64'), format: 'der', type: 'pkcs8' })
    privateKeys.set(keyId, key)
  }
  return key
}
