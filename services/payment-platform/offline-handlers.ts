// PaymentPlatformService handlers of offline payment codes (docs/design.md): payees and their
// keys, provisioning, revocation, redemption and the payer's listing. Validate -> rules
// (payees.ts, offline-credentials.ts) -> reply; the expiry sweep runs with the retention pass.
import type { Kysely } from 'kysely'
import {
  EndTerminalCredentialsRequest,
  EndTerminalCredentialsResponse,
  type OfflineCredential,
  OfflineCredentialState,
  type OfflineRedemption,
  type PaymentPlatformServiceService,
  ProvisionOfflineCredentialRequest,
  ProvisionOfflineCredentialResponse,
  PublishPayeeKeyRequest,
  PublishPayeeKeyResponse,
  RedeemOfflineCodeRequest,
  RedeemOfflineCodeResponse,
  RegisterPayeeRequest,
  RegisterPayeeResponse,
  RevokeOfflineCredentialRequest,
  RevokeOfflineCredentialResponse,
} from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { inTransaction } from '../runtime/database.ts'
import { NotFoundError } from '../runtime/errors.ts'
import { callOf, idempotent, idempotentFlow } from '../runtime/idempotency.ts'
import { MAX_OPENED_CODE_BYTES, payeeCodeText } from '../runtime/offline-codes.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { type PublishedKey, SEALING_PUBLIC_KEY_BYTES } from '../runtime/sealed-box.ts'
import type { Handlers as AllHandlers } from '../runtime/rpc.ts'
import type { Sealer } from '../runtime/sealing.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { type Format, MAX_AMOUNT_MINOR, validate } from '../runtime/validation.ts'
import * as ledger from './ledger.ts'
import { queueOfflineRedeemed } from './notifications.ts'
import * as credentials from './offline-credentials.ts'
import * as payees from './payees.ts'
import { publishingIdentity } from './sealing-keys.ts'
import type { OfflineCredentialRow, OfflineRedemptionRow, PayeeRow } from './store/offline-repository.ts'
import * as offline from './store/offline-repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

type Handlers = AllHandlers<typeof PaymentPlatformServiceService>
type OfflineHandlers = Pick<
  Handlers,
  | 'registerPayee'
  | 'publishPayeeKey'
  | 'getPayeeCode'
  | 'provisionOfflineCredential'
  | 'revokeOfflineCredential'
  | 'redeemOfflineCode'
  | 'listOfflineRedemptions'
  | 'endTerminalCredentials'
>

const ACCOUNT_NUMBER: Format = { pattern: /^[A-Za-z0-9]{6,34}$/, description: 'must be 6-34 letters and digits' }
const CREDENTIAL_ID: Format = { pattern: /^OC[0-9A-F]{20}$/, description: 'must be a credential_id returned by ProvisionOfflineCredential' }
const HOLDER: Format = { pattern: payees.HOLDER_PATTERN, description: 'must be "terminal/<id>" or "service/<name>"' }

const STATES = {
  active: OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_ACTIVE,
  revoked: OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_REVOKED,
  expired: OfflineCredentialState.OFFLINE_CREDENTIAL_STATE_EXPIRED,
} as const

const toCredential = (row: OfflineCredentialRow, now: Date): OfflineCredential => {
  const money = (amountMinor: bigint) => ({ currencyCode: row.currency_code, amountMinor })
  const state = credentials.effectiveCredentialState(row, now)
  return {
    credentialId: row.credential_id,
    platformId: row.platform_id,
    maskedPayerAccount: row.masked_payer,
    state: STATES[state],
    notBefore: row.not_before,
    notAfter: row.not_after,
    perCodeCap: money(row.per_code_cap_minor),
    allowance: money(row.allowance_minor),
    // An expired credential's rest is no longer spendable, swept back or not yet.
    remaining: money(state === 'active' ? row.remaining_minor : 0n),
    counterWindow: row.counter_window,
  }
}

const toRedemption = (row: OfflineRedemptionRow): OfflineRedemption => ({
  redemptionId: row.redemption_id,
  credentialId: row.credential_id,
  counter: row.counter,
  payeeId: row.payee_id,
  amount: { currencyCode: row.currency_code, amountMinor: row.amount_minor },
  generateTime: row.generated_at,
  redeemTime: row.redeemed_at,
})

const toPayeeKey = (key: PublishedKey) => ({ keyId: key.keyId, publicKey: Buffer.from(key.publicKey), notAfter: key.notAfter })

const toPayee = (row: PayeeRow) => ({
  platformId: row.platform_id,
  payeeId: row.payee_id,
  collectionAccount: row.collection_account,
  holder: row.holder,
  currencyCode: row.currency_code,
})

export function offlineHandlers(deps: ServiceDeps<PlatformDatabase>, parts: { readonly onPlatform: (platformId: string) => void; readonly kickOutbox: () => void }): OfflineHandlers {
  const db = deps.db
  const settings = deps.config.payment
  const limits = settings.offline
  const { onPlatform } = parts
  return {
    registerPayee: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .id(request.payeeId, 'payee_id')
          .format(request.collectionAccount, 'collection_account', ACCOUNT_NUMBER)
          .format(request.holder, 'holder', HOLDER),
      )
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, RegisterPayeeRequest, RegisterPayeeResponse), async (trx) => ({
        payee: toPayee(await payees.registerPayee(trx, deps.sealer, request)),
      }))
    },

    publishPayeeKey: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .id(request.payeeId, 'payee_id')
          .check(request.publicKey.length === SEALING_PUBLIC_KEY_BYTES, 'public_key', `must be a ${SEALING_PUBLIC_KEY_BYTES}-byte X25519 public key as HPKE serializes it`),
      )
      onPlatform(request.platformId)
      const payee = await payees.heldPayee(db, request.platformId, request.payeeId, ctx.caller)
      return idempotent(db, callOf(ctx, request, PublishPayeeKeyRequest, PublishPayeeKeyResponse), async (trx) => ({
        key: toPayeeKey(await payees.publishPayeeKey(trx, payee, request.publicKey, limits)),
      }))
    },

    getPayeeCode: async (request) => {
      validate((v) => v.id(request.platformId, 'platform_id').id(request.payeeId, 'payee_id'))
      onPlatform(request.platformId)
      const payee = await payees.getPayee(db, request.platformId, request.payeeId)
      const identity = await publishingIdentity(deps.certificate)
      const payeeCode = await payees.payeeCode(db, payee, identity.privateKey, limits, deps.clock.now())
      return { payeeCode, code: payeeCodeText(payeeCode), certificateChain: identity.chain }
    },

    provisionOfflineCredential: async (request, ctx) => {
      const now = deps.clock.now().getTime()
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.payerAccount, 'payer_account', ACCOUNT_NUMBER)
          .text(request.paymentPassword, 'payment_password', { min: 1, max: 128 })
          .money(request.allowance, 'allowance', { positive: true })
          .check(
            (request.allowance?.amountMinor ?? 0n) > MAX_AMOUNT_MINOR || (request.allowance?.amountMinor ?? 0n) <= limits.allowanceMaxMinor,
            'allowance.amount_minor',
            `must be at most ${limits.allowanceMaxMinor} (CLOUDPAY_OFFLINE_ALLOWANCE_MAX_MINOR)`,
          )
          .integer(request.perCodeCapMinor, 'per_code_cap_minor', {
            min: 1n,
            max: request.allowance?.amountMinor && request.allowance.amountMinor > 0n ? request.allowance.amountMinor : 1n,
          })
          .timestamp(request.expireTime, 'expire_time')
          .check(
            !request.expireTime || (request.expireTime.getTime() > now && request.expireTime.getTime() <= now + limits.credentialMaxTtlMs),
            'expire_time',
            `must be in the future and at most ${limits.credentialMaxTtlMs} ms ahead (CLOUDPAY_OFFLINE_CREDENTIAL_MAX_TTL_MS)`,
          ),
      )
      onPlatform(request.platformId)
      const identity = await publishingIdentity(deps.certificate)
      const reply = await idempotentFlow(db, callOf(ctx, request, ProvisionOfflineCredentialRequest, ProvisionOfflineCredentialResponse), async (commit) => {
        const payer = await ledger.getAccount(db, deps.sealer, request.platformId, request.payerAccount)
        if (payer.kind !== 'payer') throw new NotFoundError('PAYER_NOT_FOUND', `payer_account: no payer account like that on platform ${request.platformId}`)
        // Pay's own password check: counted, locking the payer after too many wrong ones.
        await ledger.checkPayerPassword(db, request.platformId, payer.account_ref, request.paymentPassword, settings, deps.clock.now())
        return commit(async (trx) => {
          const row = await credentials.provision(
            trx,
            deps.sealer,
            {
              platformId: request.platformId,
              terminalId: ctx.caller.id,
              payer,
              allowance: request.allowance!,
              perCodeCapMinor: request.perCodeCapMinor,
              notAfter: request.expireTime ?? new Date(now + limits.credentialMaxTtlMs),
              counterWindow: limits.counterWindow,
            },
            new Date(now),
          )
          // The stored reply leaves the secret out; it is derived again below for the first answer and every retry.
          return { credential: toCredential(row, new Date(now)), credentialSecret: Buffer.alloc(0), certificateChain: [] }
        })
      })
      const credentialId = reply.credential!.credentialId
      return { ...reply, credentialSecret: credentials.credentialSecret(deps.sealer, credentialId), certificateChain: identity.chain }
    },

    revokeOfflineCredential: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.platformId, 'platform_id').format(request.credentialId, 'credential_id', CREDENTIAL_ID))
      onPlatform(request.platformId)
      await credentials.credentialFor(db, request.platformId, request.credentialId, ctx.caller)
      return idempotent(db, callOf(ctx, request, RevokeOfflineCredentialRequest, RevokeOfflineCredentialResponse), async (trx) => {
        const ended = await credentials.revoke(trx, deps.sealer, request.platformId, request.credentialId, deps.clock.now())
        return { credential: toCredential(ended.credential, deps.clock.now()), returned: { currencyCode: ended.credential.currency_code, amountMinor: ended.returnedMinor } }
      })
    },

    redeemOfflineCode: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .id(request.payeeId, 'payee_id')
          .bytes(request.code, 'code', { min: 1, max: MAX_OPENED_CODE_BYTES })
          .money(request.amount, 'amount', { positive: true }),
      )
      onPlatform(request.platformId)
      const payee = await payees.heldPayee(db, request.platformId, request.payeeId, ctx.caller)
      const reply = await idempotentFlow(db, callOf(ctx, request, RedeemOfflineCodeRequest, RedeemOfflineCodeResponse), async (commit) => {
        const ask = { payee, opened: request.code, charge: request.amount! }
        const code = await credentials.authenticate(db, deps.sealer, ask, limits, deps.clock.now())
        ctx.span.setAttribute('cloudpay.credential_id', code.credential.credential_id)
        return commit(async (trx) => {
          const redemption = await credentials.redeem(trx, deps.sealer, ask, code, deps.clock.now())
          await queueOfflineRedeemed(trx, code.credential.terminal_id, redemption.redemption_id)
          return { redemption: toRedemption(redemption) }
        })
      })
      parts.kickOutbox()
      return reply
    },

    listOfflineRedemptions: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').format(request.credentialId, 'credential_id', CREDENTIAL_ID).page(request))
      onPlatform(request.platformId)
      const credential = await credentials.credentialFor(db, request.platformId, request.credentialId, ctx.caller)
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { platform: request.platformId, credential: request.credentialId },
        cursor: SEQUENCE_CURSOR,
        fetch: (before, limit) => offline.listRedemptions(db, credential.credential_id, before, limit),
        cursorOf: (row) => row.counter,
      })
      return { credential: toCredential(credential, deps.clock.now()), redemptions: items.map(toRedemption), nextPageToken }
    },

    endTerminalCredentials: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.terminalId, 'terminal_id').timestamp(request.provisionedBefore, 'provisioned_before', { required: true }))
      return idempotent(db, callOf(ctx, request, EndTerminalCredentialsRequest, EndTerminalCredentialsResponse), async (trx) => ({
        credentialIds: (await credentials.endTerminalCredentials(trx, deps.sealer, request.terminalId, request.provisionedBefore!, deps.clock.now())).map(
          (row) => row.credential_id,
        ),
      }))
    },
  }
}

/** The expiry sweep: credentials past their window give their rest back to the payers (one short transaction per batch). */
export function expiredCredentialsSweep(db: Kysely<PlatformDatabase>, sealer: Sealer) {
  return (now: Date, limit: number) => inTransaction(db, (trx) => credentials.sweepExpired(trx, sealer, now, limit))
}
