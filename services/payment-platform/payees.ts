// Payees (docs/design.md, offline codes): a merchant collection account at a platform, held by
// one mesh identity that alone publishes the payee's keys and redeems codes paid to it. The
// holder generates its key pairs; the platform keeps only the public halves and vouches for
// them (the payee code, signed like the sealing keys). A key is accepted until created +
// rotation + grace, the sealing keys' rule with the payee periods.
import type { Kysely } from 'kysely'
import type { PayeeCode } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { OfflineSettings } from '../runtime/config.ts'
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import { formatIdentity, type Identity, ID_PATTERN } from '../runtime/identity.ts'
import { signedPayeeCode } from '../runtime/offline-codes.ts'
import type { PublishedKey } from '../runtime/sealed-box.ts'
import type { Sealer } from '../runtime/sealing.ts'
import { randomUUID, type KeyObject } from 'node:crypto'
import { accountRef } from './ledger.ts'
import { keyNotAfter } from './sealing-keys.ts'
import * as offline from './store/offline-repository.ts'
import type { PayeeRow } from './store/offline-repository.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Db = Kysely<PlatformDatabase>

/** The roles a payee's holder may have: a counter or POS (terminal), or a merchant's server (service). */
export const HOLDER_PATTERN = /^(terminal|service)\/[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export async function registerPayee(db: Db, sealer: Sealer, input: { platformId: string; payeeId: string; collectionAccount: string; holder: string }): Promise<PayeeRow> {
  const collection = await store.findAccount(db, input.platformId, accountRef(sealer, input.platformId, input.collectionAccount))
  if (!collection || collection.kind !== 'collection') {
    throw new NotFoundError('COLLECTION_ACCOUNT_NOT_FOUND', `collection_account ${input.collectionAccount} does not exist on platform ${input.platformId}`)
  }
  const row = await offline.insertPayee(db, {
    platform_id: input.platformId,
    payee_id: input.payeeId,
    collection_ref: collection.account_ref,
    collection_account: input.collectionAccount,
    holder: input.holder,
    currency_code: collection.currency_code,
  })
  if (!row) throw new AlreadyExistsError('PAYEE_EXISTS', `payee_id ${input.payeeId} is already registered on platform ${input.platformId}`)
  return row
}

export async function getPayee(db: Db, platformId: string, payeeId: string): Promise<PayeeRow> {
  const payee = await offline.findPayee(db, platformId, payeeId)
  if (!payee) throw new NotFoundError('PAYEE_NOT_FOUND', `payee_id: no payee ${quote(payeeId)} on platform ${platformId}`)
  return payee
}

/** The payee, when `caller` holds it: the same refusal whether it does not exist or is another's. */
export async function heldPayee(db: Db, platformId: string, payeeId: string, caller: Identity): Promise<PayeeRow> {
  const payee = await offline.findPayee(db, platformId, payeeId)
  if (!payee || payee.holder !== formatIdentity(caller)) {
    throw new PermissionDeniedError('PAYEE_NOT_HELD', `${formatIdentity(caller)} does not hold payee ${quote(payeeId)} on platform ${platformId}`)
  }
  return payee
}

const keyOf = (row: offline.PayeeKeyRow, settings: OfflineSettings): PublishedKey => ({
  keyId: row.key_id,
  publicKey: Buffer.from(row.public_key),
  notAfter: keyNotAfter(row.created_at, settings.payeeKeyRotationMs, settings.payeeKeyGraceMs),
})

export async function publishPayeeKey(db: Db, payee: PayeeRow, publicKey: Uint8Array, settings: OfflineSettings): Promise<PublishedKey> {
  const row = await offline.insertPayeeKey(db, { key_id: `pk-${randomUUID()}`, platform_id: payee.platform_id, payee_id: payee.payee_id, public_key: Buffer.from(publicKey) })
  return keyOf(row, settings)
}

/** The payee code: its newest accepted key, signed with the platform's TLS key. */
export async function payeeCode(db: Db, payee: PayeeRow, tlsPrivateKey: KeyObject, settings: OfflineSettings, now: Date): Promise<PayeeCode> {
  const since = new Date(now.getTime() - settings.payeeKeyRotationMs - settings.payeeKeyGraceMs)
  const row = await offline.findNewestPayeeKey(db, payee.platform_id, payee.payee_id, since)
  if (!row) throw new FailedPreconditionError('PAYEE_KEY_MISSING', `payee ${payee.payee_id} has no accepted key; its holder publishes one with PublishPayeeKey`)
  return signedPayeeCode(tlsPrivateKey, { platformId: payee.platform_id, payeeId: payee.payee_id, currencyCode: payee.currency_code }, keyOf(row, settings))
}

/** The payee key a code names, while it is accepted: PAYEE_KEY_UNKNOWN, or PAYEE_KEY_EXPIRED once rotated out beyond the grace. */
export async function acceptedPayeeKey(db: Db, payee: PayeeRow, keyId: string, settings: OfflineSettings, now: Date): Promise<PublishedKey> {
  const row = ID_PATTERN.test(keyId) ? await offline.findPayeeKey(db, payee.platform_id, payee.payee_id, keyId) : undefined
  if (!row) throw InvalidArgumentError.field('code', `names payee key ${quote(keyId)}, which payee ${payee.payee_id} never published`, 'PAYEE_KEY_UNKNOWN')
  const key = keyOf(row, settings)
  if (key.notAfter <= now) {
    throw new FailedPreconditionError('PAYEE_KEY_EXPIRED', `the code was sealed to payee key ${keyId}, rotated out and no longer accepted since ${key.notAfter.toISOString()}`)
  }
  return key
}
