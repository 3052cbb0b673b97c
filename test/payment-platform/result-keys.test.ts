// A platform's payment-result signing keys (services/payment-platform/result-keys.ts) on a real
// database, no gRPC: one key is current for its rotation period, a new one after it, and a key made
// in a transaction that rolled back is never handed out (it was never stored).
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { paymentPlatform } from '../../services/payment-platform/server.ts'
import { currentResultKey, signingKey } from '../../services/payment-platform/result-keys.ts'
import type { PlatformDatabase } from '../../services/payment-platform/store/tables.ts'
import { inTransaction } from '../../services/runtime/database.ts'
import { Sealer } from '../../services/runtime/sealing.ts'
import { DATABASE_KIND, serviceDatabase } from '../helpers/domain.ts'

const service = serviceDatabase<PlatformDatabase>(paymentPlatform)
const sealer = new Sealer(randomBytes(32))
const ROTATION_MS = 60_000

test(`one result key is current for its rotation period, a new one after it (${DATABASE_KIND})`, async () => {
  const platform = `pay-${randomUUID().slice(0, 8)}`
  const start = new Date()
  const first = await currentResultKey(service.db, sealer, platform, ROTATION_MS, start)
  const later = new Date(start.getTime() + ROTATION_MS / 2)
  assert.equal((await currentResultKey(service.db, sealer, platform, ROTATION_MS, later)).keyId, first.keyId, 'read back')
  assert.equal((await currentResultKey(service.db, sealer, platform, ROTATION_MS, later)).keyId, first.keyId, 'remembered')
  const rotated = await currentResultKey(service.db, sealer, platform, ROTATION_MS, new Date(start.getTime() + 2 * ROTATION_MS))
  assert.notEqual(rotated.keyId, first.keyId, 'past its period, a new key')
  for (const key of [first, rotated]) assert.ok(await signingKey(service.db, sealer, key.keyId), `${key.keyId} is stored and opens`)
})

test(`a key made in a transaction that rolled back is never handed out (${DATABASE_KIND})`, async () => {
  const platform = `pay-${randomUUID().slice(0, 8)}`
  const now = new Date()
  let madeThenRolledBack: string | undefined
  await assert.rejects(
    inTransaction(service.db, async (trx) => {
      madeThenRolledBack = (await currentResultKey(trx, sealer, platform, ROTATION_MS, now)).keyId
      throw new Error('the prepay failed after its key was made')
    }),
  )
  const next = await inTransaction(service.db, (trx) => currentResultKey(trx, sealer, platform, ROTATION_MS, now))
  assert.notEqual(next.keyId, madeThenRolledBack, 'the rolled-back key is gone; a stored one is current')
  assert.ok(await signingKey(service.db, sealer, next.keyId))
  assert.equal((await currentResultKey(service.db, sealer, platform, ROTATION_MS, now)).keyId, next.keyId)
})
