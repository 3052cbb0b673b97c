// The payment_platform schema's migrations on PGlite, or on PostgreSQL when DATABASE_URL is set:
// a transaction refunded before refunded_at existed gets its payment time back from the ledger;
// spent sealed credentials are purged only past every key's acceptance; ended offline credentials
// and old payee keys are purged after their windows, live credentials never.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { forSchema, migrateSchema } from '../../services/runtime/database.ts'
import { paymentPlatform } from '../../services/payment-platform/server.ts'
import type { PlatformDatabase } from '../../services/payment-platform/store/tables.ts'
import { purges as platformPurges } from '../../services/payment-platform/retention.ts'
import { loadConfig } from '../../services/runtime/config.ts'
import { purge } from '../../services/runtime/retention.ts'
import { DATABASE_KIND, openFresh } from '../helpers/database.ts'
import { Sealer } from '../../services/runtime/sealing.ts'

const TEST_SEALER = new Sealer(Buffer.alloc(32, 7))

test(`refunded_at: a transaction refunded before it keeps its refund time there and gets its payment time back (${DATABASE_KIND})`, async () => {
  const { database, close } = await openFresh()
  try {
    const before = Object.fromEntries(Object.entries(paymentPlatform.migrations).filter(([name]) => name < '2026_12_01_0005'))
    await migrateSchema(database, paymentPlatform.schema, before)
    const db = forSchema<any>(database, paymentPlatform.schema)
    const paidAt = new Date('2026-11-30T10:00:00Z')
    const refundedAt = new Date('2026-11-30T11:00:00Z')
    const txn = (serial: string, state: string, completedAt: Date | null) => ({
      serial_number: serial,
      platform_id: 'alphapay',
      state,
      amount_minor: 100n,
      currency_code: 'USD',
      payer_ref: 'p',
      masked_payer: '****1234',
      collection_ref: 'c',
      collection_account: 'SHOP',
      merchant_id: 'm',
      merchant_order_id: 'o',
      description: '',
      expires_at: paidAt,
      completed_at: completedAt,
    })
    await db
      .insertInto('transactions')
      .values([txn('TXOLDREFUND', 'refunded', refundedAt), txn('TXPAID', 'succeeded', paidAt)])
      .execute()
    const entry = (account: string, delta: bigint, at: Date) => ({
      platform_id: 'alphapay',
      journal_id: `j-${at.getTime()}`,
      serial_number: 'TXOLDREFUND',
      account_ref: account,
      masked_number: account,
      delta_minor: delta,
      currency_code: 'USD',
      created_at: at,
    })
    await db
      .insertInto('ledger_entries')
      .values([entry('p', -100n, paidAt), entry('c', 100n, paidAt), entry('c', -100n, refundedAt), entry('p', 100n, refundedAt)])
      .execute()

    assert.ok((await migrateSchema(database, paymentPlatform.schema, paymentPlatform.migrations)).applied.includes('2026_12_01_0005_refunded_at'))
    const rows = await forSchema<PlatformDatabase>(database, paymentPlatform.schema)
      .selectFrom('transactions')
      .select(['serial_number', 'completed_at', 'refunded_at'])
      .orderBy('serial_number')
      .execute()
    assert.deepEqual(rows, [
      { serial_number: 'TXOLDREFUND', completed_at: paidAt, refunded_at: refundedAt },
      { serial_number: 'TXPAID', completed_at: paidAt, refunded_at: null },
    ])
  } finally {
    await close()
  }
})

test(`spent sealed credentials are forgotten only once no sealing key they were made with is accepted (${DATABASE_KIND})`, async () => {
  const { database, close } = await openFresh()
  try {
    await migrateSchema(database, paymentPlatform.schema, paymentPlatform.migrations)
    const db = forSchema<any>(database, paymentPlatform.schema)
    const config = loadConfig({})
    const day = 24 * 3_600_000
    const now = new Date('2026-12-01T12:00:00Z')
    const made = (ageMs: number) => new Date(now.getTime() - ageMs)
    await db
      .insertInto('sealed_blobs')
      .values([
        { digest: 'old', platform_id: 'alphapay', serial_number: 'TX1', outcome: 'paid', created_at: made(10 * day) },
        { digest: 'recent', platform_id: 'alphapay', serial_number: 'TX2', outcome: 'wrong_password', created_at: made(config.payment.sealingKeyRotationMs) },
      ])
      .execute()
    const sealed = platformPurges({ db, config, sealer: TEST_SEALER }).find((p) => p.name === 'sealed_blobs')!
    assert.ok(sealed.windowMs >= config.payment.sealingKeyRotationMs + config.payment.sealingKeyGraceMs)
    assert.equal(await purge(sealed, { now }), 1)
    assert.deepEqual((await db.selectFrom('sealed_blobs').select('digest').execute()).map((r: { digest: string }) => r.digest), ['recent'])
  } finally {
    await close()
  }
})

test(`offline credentials: an ended one goes with its redemptions after the window, a live one never; payee keys only past their grace (${DATABASE_KIND})`, async () => {
  const { database, close } = await openFresh()
  try {
    await migrateSchema(database, paymentPlatform.schema, paymentPlatform.migrations)
    const db = forSchema<any>(database, paymentPlatform.schema)
    const config = loadConfig({})
    const offline = config.payment.offline
    const now = new Date()
    const ago = (ms: number) => new Date(now.getTime() - ms)
    const credential = (id: string, state: string, endedAt: Date | null) => ({
      credential_id: id,
      platform_id: 'alphapay',
      terminal_id: 'phone',
      payer_ref: 'p',
      masked_payer: '****1234',
      currency_code: 'USD',
      per_code_cap_minor: 100n,
      allowance_minor: 100n,
      remaining_minor: 0n,
      counter_window: 32,
      not_before: ago(offline.retentionMs * 3),
      not_after: ago(offline.retentionMs * 2),
      state,
      ended_at: endedAt,
      created_at: ago(offline.retentionMs * 3),
    })
    await db
      .insertInto('offline_credentials')
      .values([
        credential('OCENDEDLONGAGO', 'revoked', ago(offline.retentionMs + 60_000)),
        credential('OCENDEDRECENTLY', 'expired', ago(offline.retentionMs - 60_000)),
        // Past its window but never swept: its reserve is still owed to the payer, so it is never deleted.
        credential('OCSTILLACTIVE', 'active', null),
      ])
      .execute()
    const redemption = (credentialId: string, counter: bigint) => ({
      redemption_id: `OR${credentialId}${counter}`,
      credential_id: credentialId,
      counter,
      platform_id: 'alphapay',
      payee_id: 'shop',
      amount_minor: 10n,
      currency_code: 'USD',
      generated_at: ago(offline.retentionMs * 3),
    })
    await db
      .insertInto('offline_redemptions')
      .values([redemption('OCENDEDLONGAGO', 1n), redemption('OCENDEDLONGAGO', 2n), redemption('OCENDEDRECENTLY', 1n), redemption('OCSTILLACTIVE', 1n)])
      .execute()
    const kinds = platformPurges({ db, config, sealer: TEST_SEALER })
    assert.equal(await purge(kinds.find((k) => k.name === 'offline_credentials')!, { now }), 1)
    assert.deepEqual((await db.selectFrom('offline_credentials').select('credential_id').orderBy('credential_id').execute()).map((r: { credential_id: string }) => r.credential_id), [
      'OCENDEDRECENTLY',
      'OCSTILLACTIVE',
    ])
    assert.deepEqual((await db.selectFrom('offline_redemptions').select('credential_id').orderBy('credential_id').execute()).map((r: { credential_id: string }) => r.credential_id), [
      'OCENDEDRECENTLY',
      'OCSTILLACTIVE',
    ])

    const keyMade = (keyId: string, at: Date) => ({ key_id: keyId, platform_id: 'alphapay', payee_id: 'shop', public_key: Buffer.alloc(32), created_at: at })
    const lifetime = offline.payeeKeyRotationMs + offline.payeeKeyGraceMs
    await db
      .insertInto('payee_keys')
      .values([keyMade('pk-gone', ago(lifetime + offline.retentionMs + 60_000)), keyMade('pk-past-grace', ago(lifetime + 60_000)), keyMade('pk-current', now)])
      .execute()
    assert.equal(await purge(kinds.find((k) => k.name === 'payee_keys')!, { now }), 1)
    assert.deepEqual((await db.selectFrom('payee_keys').select('key_id').orderBy('key_id').execute()).map((r: { key_id: string }) => r.key_id), ['pk-current', 'pk-past-grace'])
  } finally {
    await close()
  }
})
