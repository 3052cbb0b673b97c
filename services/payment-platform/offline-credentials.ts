// Offline credentials and redemption (docs/design.md, "Offline payment codes sealed to the
// payee"). Provisioning reserves the allowance in the ledger at once (payer -> the platform's
// offline reserve); a redemption moves from the reserve to the payee, exactly once per counter;
// revoking or expiry returns the rest. Money only ever moves in one journal per step, so the sum
// of all balances never changes.
import { randomBytes } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { OfflinePaymentCode, OfflinePaymentCodeBody } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import type { OfflineSettings } from '../runtime/config.ts'
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, PermissionDeniedError, quote } from '../runtime/errors.ts'
import type { Identity } from '../runtime/identity.ts'
import { macMatches } from '../runtime/offline-codes.ts'
import type { Sealer } from '../runtime/sealing.ts'
import { ensureInternalAccount, type Money, transfer } from './ledger.ts'
import { acceptedPayeeKey } from './payees.ts'
import * as offline from './store/offline-repository.ts'
import type { OfflineCredentialRow, OfflineRedemptionRow, PayeeRow } from './store/offline-repository.ts'
import * as store from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Db = Kysely<PlatformDatabase>
type Trx = Transaction<PlatformDatabase>

/** The credential secret: a keyed hash of its id under the data key, so no table ever holds it. */
export const credentialSecret = (sealer: Sealer, credentialId: string): Buffer => Buffer.from(sealer.fingerprint(credentialId, 'offline-credential-secret'), 'base64url')

const newId = (prefix: string): string => `${prefix}${randomBytes(10).toString('hex').toUpperCase()}`

/** Creates the credential and moves the allowance payer -> reserve, in one transaction; the password was checked before. */
export async function provision(
  trx: Trx,
  sealer: Sealer,
  input: { platformId: string; terminalId: string; payer: store.AccountRow; allowance: Money; perCodeCapMinor: bigint; notAfter: Date; counterWindow: number },
  now: Date,
): Promise<OfflineCredentialRow> {
  if (input.payer.currency_code !== input.allowance.currencyCode) {
    throw new FailedPreconditionError('CURRENCY_MISMATCH', `allowance is in ${input.allowance.currencyCode} but the payer account holds ${input.payer.currency_code}`)
  }
  const credentialId = newId('OC')
  const reserve = await ensureInternalAccount(trx, sealer, input.platformId, 'reserve', input.allowance.currencyCode)
  const locked = await store.lockAccounts(trx, input.platformId, [input.payer.account_ref, reserve.account_ref])
  const payer = locked.get(input.payer.account_ref)!
  if (payer.balance_minor < input.allowance.amountMinor) {
    throw new FailedPreconditionError(
      'INSUFFICIENT_BALANCE',
      `the payer account ${payer.masked_number} lacks funds to reserve ${input.allowance.amountMinor} ${input.allowance.currencyCode}`,
    )
  }
  await transfer(trx, input.platformId, payer, locked.get(reserve.account_ref)!, input.allowance, credentialId)
  return offline.insertCredential(trx, {
    credential_id: credentialId,
    platform_id: input.platformId,
    terminal_id: input.terminalId,
    payer_ref: payer.account_ref,
    masked_payer: payer.masked_number,
    currency_code: input.allowance.currencyCode,
    per_code_cap_minor: input.perCodeCapMinor,
    allowance_minor: input.allowance.amountMinor,
    remaining_minor: input.allowance.amountMinor,
    counter_window: input.counterWindow,
    not_before: now,
    not_after: input.notAfter,
  })
}

/** The state a credential is in at `now` (an active one past its window is expired, swept or not). */
export const effectiveCredentialState = (row: OfflineCredentialRow, now: Date): OfflineCredentialRow['state'] =>
  row.state === 'active' && row.not_after <= now ? 'expired' : row.state

/** A credential as `caller` may see it: its own terminal's, or any for an operator; the same refusal for another's and a missing one. */
export async function credentialFor(db: Db, platformId: string, credentialId: string, caller: Identity): Promise<OfflineCredentialRow> {
  if (caller.role === 'operator') {
    const row = await offline.findCredential(db, platformId, credentialId)
    if (!row) throw new NotFoundError('OFFLINE_CREDENTIAL_NOT_FOUND', `credential_id: no offline credential ${quote(credentialId)} on platform ${platformId}`)
    return row
  }
  // One provisioned under an enrolment of the terminal that has ended since is no longer its own (rental-boundary.ts).
  const found = await offline.findCredentialOf(db, platformId, credentialId, caller.id)
  if (!found || found.of_ended_enrolment || found.terminal_id !== caller.id) {
    throw new PermissionDeniedError('OFFLINE_CREDENTIAL_NOT_YOURS', `credential_id: ${quote(credentialId)} is not an offline credential of terminal ${caller.id}`)
  }
  const { of_ended_enrolment: _, ...row } = found
  return row
}

/** Ends a locked credential: what is left goes reserve -> payer in one journal. Returns the amount returned. */
async function end(trx: Trx, sealer: Sealer, credential: OfflineCredentialRow, state: 'revoked' | 'expired', now: Date): Promise<{ credential: OfflineCredentialRow; returnedMinor: bigint }> {
  const returnedMinor = credential.remaining_minor
  if (returnedMinor > 0n) {
    const reserve = await ensureInternalAccount(trx, sealer, credential.platform_id, 'reserve', credential.currency_code)
    const locked = await store.lockAccounts(trx, credential.platform_id, [credential.payer_ref, reserve.account_ref])
    await transfer(
      trx,
      credential.platform_id,
      locked.get(reserve.account_ref)!,
      locked.get(credential.payer_ref)!,
      { currencyCode: credential.currency_code, amountMinor: returnedMinor },
      credential.credential_id,
    )
  }
  return { credential: await offline.endCredential(trx, credential.credential_id, state, now), returnedMinor }
}

/** Revokes a credential (an ended one stays as it is, returning nothing more). */
export async function revoke(trx: Trx, sealer: Sealer, platformId: string, credentialId: string, now: Date): Promise<{ credential: OfflineCredentialRow; returnedMinor: bigint }> {
  return revokeLocked(trx, sealer, (await offline.lockCredential(trx, platformId, credentialId))!, now)
}

function revokeLocked(trx: Trx, sealer: Sealer, credential: OfflineCredentialRow, now: Date): Promise<{ credential: OfflineCredentialRow; returnedMinor: bigint }> {
  if (credential.state !== 'active') return Promise.resolve({ credential, returnedMinor: 0n })
  return end(trx, sealer, credential, effectiveCredentialState(credential, now) === 'expired' ? 'expired' : 'revoked', now)
}

/**
 * A removed terminal's enrolment ends here: every credential it provisioned before the removal
 * is revoked as RevokeOfflineCredential revokes it (each rest back to its payer, once: an ended
 * one is not locked again), and the removal is recorded so the terminal no longer sees them.
 * Returns the credentials ended.
 */
export async function endTerminalCredentials(trx: Trx, sealer: Sealer, terminalId: string, removedAt: Date, now: Date): Promise<OfflineCredentialRow[]> {
  await offline.recordEnrolmentEnd(trx, terminalId, removedAt)
  const ended: OfflineCredentialRow[] = []
  for (const credential of await offline.lockTerminalCredentials(trx, terminalId, removedAt)) ended.push((await revokeLocked(trx, sealer, credential, now)).credential)
  return ended
}

/** Ends up to `limit` credentials past their window, returning their rest to the payers; how many. */
export async function sweepExpired(trx: Trx, sealer: Sealer, now: Date, limit: number): Promise<number> {
  const due = await offline.lockExpiredCredentials(trx, now, limit)
  for (const credential of due) await end(trx, sealer, credential, 'expired', now)
  return due.length
}

/** What a redemption asks for, once the handler checked the request's shape. */
export interface RedemptionAsk {
  readonly payee: PayeeRow
  readonly opened: Uint8Array
  readonly charge: Money
}

/** A code whose MAC verified: its body and its credential, not yet checked against state. */
export interface AuthenticCode {
  readonly body: OfflinePaymentCodeBody
  readonly credential: OfflineCredentialRow
  readonly generatedAt: Date
}

const unreadable = (why: string) => InvalidArgumentError.field('code', `is not an opened offline payment code (${why})`, 'OFFLINE_CODE_UNREADABLE')

/**
 * Every check that needs no lock, in the design's order: the code parses, its credential exists,
 * its MAC verifies (any altered byte fails here), it names the calling payee, its payee key is
 * still accepted, the credential is live, its time lies in the window, currencies agree, the
 * amounts are within the cap and the code. Each refusal moves nothing.
 */
export async function authenticate(db: Db, sealer: Sealer, ask: RedemptionAsk, settings: OfflineSettings, now: Date): Promise<AuthenticCode> {
  let body: OfflinePaymentCodeBody
  let bodyBytes: Uint8Array
  let mac: Uint8Array
  try {
    const code = OfflinePaymentCode.decode(ask.opened)
    ;({ body: bodyBytes, mac } = code)
    body = OfflinePaymentCodeBody.decode(bodyBytes)
  } catch {
    throw unreadable('it does not parse')
  }
  if (!body.amount || !body.generateTime || body.credentialId === '' || body.credentialId.length > 64) throw unreadable('a field is missing')
  if (Number.isNaN(body.generateTime.getTime())) throw unreadable('its generate_time is no time')
  const credential = await offline.findCredential(db, ask.payee.platform_id, body.credentialId)
  if (!credential)
    throw new NotFoundError('OFFLINE_CREDENTIAL_NOT_FOUND', `the code's credential ${quote(body.credentialId)} is not an offline credential of platform ${ask.payee.platform_id}`)
  if (!macMatches(credentialSecret(sealer, credential.credential_id), bodyBytes, mac)) {
    throw InvalidArgumentError.field('code', 'fails its MAC: it was altered, or not made with the credential it names', 'OFFLINE_CODE_FORGED')
  }
  if (body.platformId !== ask.payee.platform_id || body.payeeId !== ask.payee.payee_id) {
    throw new PermissionDeniedError(
      'OFFLINE_PAYEE_MISMATCH',
      `the code was made for payee ${quote(body.payeeId)} at ${quote(body.platformId)}, not for ${ask.payee.payee_id}; only that payee can redeem it`,
    )
  }
  await acceptedPayeeKey(db, ask.payee, body.payeeKeyId, settings, now)
  assertLive(credential, now)
  const generatedAt = body.generateTime
  // The terminal's clock may be a little off the platform's either way: allowed the skew at both ends.
  const skew = settings.clockSkewMs
  const made = generatedAt.getTime()
  if (made < credential.not_before.getTime() - skew || made > credential.not_after.getTime() || made > now.getTime() + skew) {
    throw new FailedPreconditionError(
      'OFFLINE_CODE_OUTSIDE_WINDOW',
      `the code was made at ${generatedAt.toISOString()}, outside the credential's window ${credential.not_before.toISOString()} - ${credential.not_after.toISOString()} (or ahead of the platform's clock)`,
    )
  }
  for (const [what, currency] of [
    ['the code', body.amount.currencyCode],
    ['the charge', ask.charge.currencyCode],
    ["the payee's collection account", ask.payee.currency_code],
  ] as const) {
    if (currency !== credential.currency_code)
      throw new FailedPreconditionError('CURRENCY_MISMATCH', `${what} is in ${quote(currency, 8)} but the credential is in ${credential.currency_code}`)
  }
  if (body.amount.amountMinor > credential.per_code_cap_minor) {
    throw new FailedPreconditionError(
      'OFFLINE_CAP_EXCEEDED',
      `the code carries ${body.amount.amountMinor}, above the credential's per-code cap of ${credential.per_code_cap_minor}`,
    )
  }
  if (ask.charge.amountMinor > body.amount.amountMinor) {
    throw new FailedPreconditionError('OFFLINE_AMOUNT_ABOVE_CODE', `amount: ${ask.charge.amountMinor} is more than the code's ${body.amount.amountMinor}`)
  }
  return { body, credential, generatedAt }
}

function assertLive(credential: OfflineCredentialRow, now: Date): void {
  const state = effectiveCredentialState(credential, now)
  if (state === 'revoked') throw new FailedPreconditionError('OFFLINE_CREDENTIAL_REVOKED', `offline credential ${credential.credential_id} was revoked`)
  if (state === 'expired')
    throw new FailedPreconditionError('OFFLINE_CREDENTIAL_EXPIRED', `offline credential ${credential.credential_id} expired at ${credential.not_after.toISOString()}`)
}

/**
 * With the credential locked: still live, the counter inside the window and never redeemed, the
 * charge within what is left; then the redemption is recorded and the money moves reserve ->
 * the payee's collection account in one journal.
 */
export async function redeem(trx: Trx, sealer: Sealer, ask: RedemptionAsk, code: AuthenticCode, now: Date): Promise<OfflineRedemptionRow> {
  const credential = (await offline.lockCredential(trx, code.credential.platform_id, code.credential.credential_id))!
  assertLive(credential, now)
  const counter = code.body.counter
  if (counter < 1n || counter <= credential.highest_counter - BigInt(credential.counter_window)) {
    throw new FailedPreconditionError(
      'OFFLINE_COUNTER_REWOUND',
      `the code's counter ${counter} is at or below ${credential.highest_counter - BigInt(credential.counter_window)} (the highest redeemed, ${credential.highest_counter}, less the window of ${credential.counter_window})`,
    )
  }
  if (await offline.isCounterRedeemed(trx, credential.credential_id, counter)) {
    throw new FailedPreconditionError('OFFLINE_CODE_REPLAYED', `a code with counter ${counter} of this credential was redeemed before`)
  }
  if (ask.charge.amountMinor > credential.remaining_minor) {
    throw new FailedPreconditionError(
      'OFFLINE_ALLOWANCE_EXCEEDED',
      `amount: ${ask.charge.amountMinor} is more than the ${credential.remaining_minor} left of the credential's allowance`,
    )
  }
  const redemptionId = newId('OR')
  const reserve = await ensureInternalAccount(trx, sealer, credential.platform_id, 'reserve', credential.currency_code)
  const locked = await store.lockAccounts(trx, credential.platform_id, [reserve.account_ref, ask.payee.collection_ref])
  await transfer(trx, credential.platform_id, locked.get(reserve.account_ref)!, locked.get(ask.payee.collection_ref)!, ask.charge, redemptionId)
  return offline.recordRedemption(trx, credential, {
    redemption_id: redemptionId,
    credential_id: credential.credential_id,
    counter,
    platform_id: credential.platform_id,
    payee_id: ask.payee.payee_id,
    amount_minor: ask.charge.amountMinor,
    currency_code: ask.charge.currencyCode,
    generated_at: code.generatedAt,
  })
}
