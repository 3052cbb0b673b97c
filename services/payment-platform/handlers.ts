// PaymentPlatformService handlers: validate the request, apply the rules, map rows to replies.
import type { Transaction as Trx } from 'kysely'
import {
  AccountKind,
  type AccountBalance,
  CancelTransactionRequest,
  CancelTransactionResponse,
  CreateMerchantAccountRequest,
  CreateMerchantAccountResponse,
  CreatePayerAccountRequest,
  CreatePayerAccountResponse,
  CreatePrepayRequest,
  CreatePrepayResponse,
  type PaymentPlatformServiceService,
  PayRequest,
  PayResponse,
  PaySealedRequest,
  PaySealedResponse,
  RefundTransactionRequest,
  RefundTransactionResponse,
  type Transaction,
  TransactionState,
} from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { FailedPreconditionError, PermissionDeniedError, UnavailableError } from '../runtime/errors.ts'
import { createHash } from 'node:crypto'
import { callOf, type Commit, idempotent, idempotentAfter, idempotentFlow, idempotentFlowReadingAnswer } from '../runtime/idempotency.ts'
import type { Handlers, RpcContext } from '../runtime/rpc.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { hashPassword } from '../runtime/passwords.ts'
import { type Credentials, MAX_SEALED_BYTES, openCredentials, sealingAad, signSealingKey } from '../runtime/sealed-credentials.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { tagged } from '../runtime/trace-context.ts'
import { CURRENCY, type Format, MAX_AMOUNT_MINOR, validate } from '../runtime/validation.ts'
import * as ledger from './ledger.ts'
import { queuePaymentResult } from './notifications.ts'
import { offlineHandlers } from './offline-handlers.ts'
import { authorizeTerminal } from './peers.ts'
import { currentResultKey } from './result-keys.ts'
import { acceptedSealingKeys, openingKey, publishingIdentity } from './sealing-keys.ts'
import * as store from './store/repository.ts'
import type { AccountRow, TransactionRow } from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'
import type { Shared } from './workers.ts'

const ACCOUNT_NUMBER: Format = { pattern: /^[A-Za-z0-9]{6,34}$/, description: 'must be 6-34 letters and digits' }
const SERIAL: Format = { pattern: /^TX[0-9A-F]{20}$/, description: 'must be a serial number returned by CreatePrepay' }

/** Who wants to act on a transaction as its terminal: the calling terminal, or one PaymentManagement relays for. */
interface TerminalActor {
  readonly terminalId: string
  /**
   * Whether to ask PaymentManagement (AuthorizeTerminal) if the terminal may still act for the
   * order: a terminal calling directly, yes; PaymentManagement relaying checked that itself.
   */
  readonly askPaymentManagement: boolean
}
const actorOf = (ctx: RpcContext): TerminalActor | undefined => (ctx.caller.role === 'terminal' ? { terminalId: ctx.caller.id, askPaymentManagement: true } : undefined)

/** The digest a used sealed blob is remembered by. */
const sealedDigest = (sealed: Uint8Array): string => createHash('sha256').update(sealed).digest('base64url')

const KINDS = {
  payer: AccountKind.ACCOUNT_KIND_PAYER,
  collection: AccountKind.ACCOUNT_KIND_COLLECTION,
  issuance: AccountKind.ACCOUNT_KIND_UNSPECIFIED,
  reserve: AccountKind.ACCOUNT_KIND_OFFLINE_RESERVE,
} as const
const toBalance = (row: AccountRow): AccountBalance => ({
  platformId: row.platform_id,
  maskedAccount: row.masked_number,
  kind: KINDS[row.kind],
  balance: { currencyCode: row.currency_code, amountMinor: row.balance_minor },
})

const STATES: Record<ledger.EffectiveTransactionState, TransactionState> = {
  pending: TransactionState.TRANSACTION_STATE_PENDING,
  succeeded: TransactionState.TRANSACTION_STATE_SUCCEEDED,
  cancelled: TransactionState.TRANSACTION_STATE_CANCELLED,
  expired: TransactionState.TRANSACTION_STATE_EXPIRED,
  refunded: TransactionState.TRANSACTION_STATE_REFUNDED,
}
const toTransaction = (row: TransactionRow, now: Date): Transaction => ({
  platformId: row.platform_id,
  serialNumber: row.serial_number,
  state: STATES[ledger.effectiveState(row, now)],
  amount: { currencyCode: row.currency_code, amountMinor: row.amount_minor },
  maskedPayerAccount: row.masked_payer,
  collectionAccount: row.collection_account,
  merchantId: row.merchant_id,
  merchantOrderId: row.merchant_order_id,
  description: row.description,
  createTime: row.created_at,
  completeTime: row.completed_at ?? undefined,
  expireTime: row.expires_at,
  refundTime: row.refunded_at ?? undefined,
})

export function createHandlers(deps: ServiceDeps<PlatformDatabase>, { outbox }: Shared): Handlers<typeof PaymentPlatformServiceService> {
  const db = deps.db
  const now = () => deps.clock.now()
  const settings = deps.config.payment
  const platforms = settings.platformIds
  const onPlatform = (platformId: string) => ledger.assertPlatform(platforms, platformId)
  /**
   * A terminal acts on a transaction only if the prepay was made for it, and only while
   * PaymentManagement says it may still act for the order (asked when the terminal calls itself;
   * when PaymentManagement relays for it, it has just checked that). When PaymentManagement cannot
   * answer, the prepay's own terminal may still pay (the payment is reported once it is back).
   */
  const assertTerminalMayAct = async (ctx: RpcContext, actor: TerminalActor, txn: TransactionRow): Promise<void> => {
    const refuse = (why: string) => new PermissionDeniedError('TERMINAL_NOT_ALLOWED', `terminal ${actor.terminalId} may not act on transaction ${txn.serial_number}: ${why}`)
    if (txn.terminal_id !== actor.terminalId) throw refuse('the prepay was made for another terminal')
    if (!actor.askPaymentManagement) return
    let verdict
    try {
      verdict = await authorizeTerminal(deps.peers, { platformId: txn.platform_id, serialNumber: txn.serial_number, terminalId: actor.terminalId }, ctx.signal)
    } catch (error) {
      if (error instanceof UnavailableError) return
      throw error
    }
    if (!verdict.allowed) throw refuse(verdict.reason.slice(0, 200))
  }
  /**
   * The transaction, as the caller may see it: a terminal (calling, or relayed for) that may not
   * act on it learns nothing, not even that it exists.
   */
  const transactionFor = async (
    ctx: RpcContext,
    platformId: string,
    serialNumber: string,
    actor = actorOf(ctx),
    /** The row if the caller read it already (null: read, and there is none). */
    known?: TransactionRow | null,
  ): Promise<TransactionRow> => {
    const txn = known !== undefined ? (known ?? undefined) : await ledger.findTransaction(db, platformId, serialNumber)
    if (!txn && actor) {
      throw new PermissionDeniedError('TERMINAL_NOT_ALLOWED', `terminal ${actor.terminalId} may not act on transaction ${serialNumber}: the prepay was made for another terminal`)
    }
    if (!txn) return ledger.getTransaction(db, platformId, serialNumber)
    // The merchant's order id is PaymentManagement's order id: what follows joins the order's trace tags.
    return tagged({ orderId: txn.merchant_order_id, platformId: txn.platform_id }, async () => {
      if (actor) await assertTerminalMayAct(ctx, actor, txn)
      return txn
    })
  }

  /**
   * Pay and PaySealed from the credentials on, one path: the payment password checked (counted,
   * locking the payer after too many), the payer account the credentials name (if any) held to the
   * transaction's, then one ledger transaction settles and queues the signed payment result. A
   * sealed blob (`sealed`, its digest) is used up with the outcome: with the count of a wrong
   * password, or with the payment; a blob used up by a concurrent call is refused, never counted.
   */
  /** Pay's own path, for Pay and for PaySealed: password (counted, locks), then one ledger transaction committed with the answer. */
  const payTransaction = async (
    commit: Commit<PlatformDatabase, PayResponse>,
    txn: TransactionRow,
    credentials: Credentials,
    sealed?: string,
    payer?: Parameters<typeof ledger.checkPaymentPassword>[6],
  ): Promise<PayResponse> => {
    const useUp = (outcome: 'paid' | 'wrong_password') => async (trx: Trx<PlatformDatabase>) => {
      if (sealed === undefined) return
      if (!(await store.useSealedBlob(trx, { digest: sealed, platform_id: txn.platform_id, serial_number: txn.serial_number, outcome }))) throw sealedReplayed()
    }
    // The merchant's order id is PaymentManagement's order id: the payment joins the order's trace tags.
    const reply = await tagged({ orderId: txn.merchant_order_id, platformId: txn.platform_id }, async () => {
      await ledger.checkPaymentPassword(db, txn, credentials.paymentPassword, settings, now(), useUp('wrong_password'), payer)
      if (credentials.payerAccount) ledger.assertPaysFrom(deps.sealer, txn, credentials.payerAccount)
      return commit(async (trx) => {
        await useUp('paid')(trx)
        const paid = await ledger.completePayment(trx, txn.platform_id, txn.serial_number, now())
        // Queued before the ledger locks the accounts: the merchant's collection account, which every
        // payment to that merchant locks, is then held only for the journal and the COMMIT after it.
        await queuePaymentResult(trx, deps.sealer, paid)
        await ledger.movePayment(trx, paid)
        return { transaction: toTransaction(paid, now()) }
      })
    })
    outbox.kick()
    return reply
  }
  const sealedReplayed = () => new FailedPreconditionError('SEALED_REPLAYED', 'these sealed credentials were used before; seal them anew for this payment')

  return {
    ...offlineHandlers(deps, { onPlatform, kickOutbox: () => outbox.kick() }),
    createPayerAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.payerAccount, 'payer_account', ACCOUNT_NUMBER)
          .text(request.paymentPassword, 'payment_password', { min: 6, max: 128 })
          .money(request.openingBalance, 'opening_balance')
          // Opening balances are the only way money enters a platform: an operator mints at most this much per account.
          // (An amount beyond any amount is already refused by money(): one violation is enough.)
          .check(
            (request.openingBalance?.amountMinor ?? 0n) > MAX_AMOUNT_MINOR || (request.openingBalance?.amountMinor ?? 0n) <= settings.maxOpeningBalanceMinor,
            'opening_balance.amount_minor',
            `must be at most ${settings.maxOpeningBalanceMinor} (CLOUDPAY_OPENING_BALANCE_MAX_MINOR)`,
          ),
      )
      onPlatform(request.platformId)
      const call = callOf(ctx, request, CreatePayerAccountRequest, CreatePayerAccountResponse)
      return idempotentAfter(
        db,
        call,
        () => hashPassword(request.paymentPassword),
        async (trx, passwordHash) => ({
          account: toBalance(
            await ledger.createPayerAccount(trx, deps.sealer, { platformId: request.platformId, number: request.payerAccount, passwordHash, opening: request.openingBalance! }),
          ),
        }),
      )
    },

    createMerchantAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .id(request.merchantId, 'merchant_id')
          .format(request.collectionAccount, 'collection_account', ACCOUNT_NUMBER)
          .format(request.currencyCode, 'currency_code', CURRENCY),
      )
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, CreateMerchantAccountRequest, CreateMerchantAccountResponse), async (trx) => ({
        account: toBalance(
          await ledger.createMerchantAccount(trx, deps.sealer, {
            platformId: request.platformId,
            merchantId: request.merchantId,
            number: request.collectionAccount,
            currencyCode: request.currencyCode,
          }),
        ),
      }))
    },

    getAccountBalance: async (request) => {
      validate((v) => v.id(request.platformId, 'platform_id').format(request.account, 'account', ACCOUNT_NUMBER))
      onPlatform(request.platformId)
      return { account: toBalance(await ledger.getAccount(db, deps.sealer, request.platformId, request.account)) }
    },

    createPrepay: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.payerAccount, 'payer_account', ACCOUNT_NUMBER)
          .format(request.collectionAccount, 'collection_account', ACCOUNT_NUMBER)
          .money(request.amount, 'amount', { positive: true })
          .id(request.merchantId, 'merchant_id')
          .id(request.merchantOrderId, 'merchant_order_id')
          .text(request.description, 'description', { max: 200, multiline: true })
          .id(request.terminalId, 'terminal_id')
          .timestamp(request.expireTime, 'expire_time'),
      )
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, CreatePrepayRequest, CreatePrepayResponse), async (trx) => {
        const resultKey = await currentResultKey(trx, deps.sealer, request.platformId, settings.resultKeyRotationMs, now())
        const created = await ledger.createPrepay(
          trx,
          deps.sealer,
          {
            platformId: request.platformId,
            payerNumber: request.payerAccount,
            amount: request.amount!,
            collectionNumber: request.collectionAccount,
            merchantId: request.merchantId,
            merchantOrderId: request.merchantOrderId,
            description: request.description,
            resultKeyId: resultKey.keyId,
            terminalId: request.terminalId,
            orderExpiresAt: request.expireTime,
          },
          settings,
          now(),
        )
        return { transaction: toTransaction(created, now()), resultKey }
      })
    },

    pay: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.serialNumber, 'serial_number', SERIAL)
          .text(request.paymentPassword, 'payment_password', { min: 1, max: 128 }),
      )
      onPlatform(request.platformId)
      return idempotentFlowReadingAnswer(db, callOf(ctx, request, PayRequest, PayResponse), async (commit, stored) => {
        // One read: the transaction, its payer's hash and lock, and an answer stored under this
        // request id (a retry of an answered Pay returns here, having checked nothing again).
        const found = await store.findTransactionToPay(db, request.platformId, request.serialNumber, stored)
        const previous = stored.answer(found?.storedAnswer)
        if (previous) return previous
        // Before the password is looked at: a stranger's guesses never count against the payer.
        const txn = await transactionFor(ctx, request.platformId, request.serialNumber, actorOf(ctx), found?.txn ?? null)
        return payTransaction(commit, txn, { paymentPassword: request.paymentPassword }, undefined, found?.payer)
      })
    },

    getSealingKeys: async (request) => {
      validate((v) => v.id(request.platformId, 'platform_id'))
      onPlatform(request.platformId)
      const keys = await acceptedSealingKeys(db, deps.sealer, request.platformId, settings, now())
      const identity = await publishingIdentity(deps.certificate)
      return {
        platformId: request.platformId,
        keys: keys.map((key) => ({ ...key, publicKey: Buffer.from(key.publicKey), signature: signSealingKey(identity.privateKey, request.platformId, key) })),
        certificateChain: identity.chain,
      }
    },

    paySealed: async (request, ctx) => {
      // The blob's size is all anyone sees of it (spans, logs, storage keep nothing else).
      ctx.span.setAttribute('cloudpay.sealed_bytes', request.sealed.length)
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.serialNumber, 'serial_number', SERIAL)
          .opaqueId(request.keyId, 'key_id')
          .bytes(request.sealed, 'sealed', { min: 1, max: MAX_SEALED_BYTES })
          .id(request.terminalId, 'terminal_id'),
      )
      onPlatform(request.platformId)
      return idempotentFlow(db, callOf(ctx, request, PaySealedRequest, PaySealedResponse), async (commit) => {
        // PaymentManagement checked that the terminal may act for the order; the prepay must be the terminal's.
        const txn = await transactionFor(ctx, request.platformId, request.serialNumber, { terminalId: request.terminalId, askPaymentManagement: false })
        return tagged({ orderId: txn.merchant_order_id, platformId: txn.platform_id }, async () => {
          // None of these refusals is a password attempt: they come before the password is looked at.
          const key = await openingKey(db, deps.sealer, txn.platform_id, request.keyId, settings, now())
          const aad = sealingAad({ serialNumber: txn.serial_number, amountMinor: txn.amount_minor, currencyCode: txn.currency_code, platformId: txn.platform_id })
          const opened = await openCredentials(key, request.sealed, aad)
          validate((v) =>
            v.text(opened.paymentPassword, 'sealed.payment_password', { min: 1, max: 128 }).format(opened.payerAccount, 'sealed.payer_account', ACCOUNT_NUMBER, { optional: true }),
          )
          const digest = sealedDigest(request.sealed)
          if (await store.isSealedBlobUsed(db, digest)) throw sealedReplayed()
          return payTransaction(commit, txn, { paymentPassword: opened.paymentPassword, payerAccount: opened.payerAccount || undefined }, digest)
        })
      })
    },

    getTransaction: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').format(request.serialNumber, 'serial_number', SERIAL))
      onPlatform(request.platformId)
      return { transaction: toTransaction(await transactionFor(ctx, request.platformId, request.serialNumber), now()) }
    },

    cancelTransaction: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.platformId, 'platform_id').format(request.serialNumber, 'serial_number', SERIAL))
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, CancelTransactionRequest, CancelTransactionResponse), async (trx) => ({
        transaction: toTransaction(await ledger.cancel(trx, request.platformId, request.serialNumber, now()), now()),
      }))
    },

    refundTransaction: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.platformId, 'platform_id')
          .format(request.serialNumber, 'serial_number', SERIAL)
          .text(request.reason, 'reason', { max: 200, multiline: true }),
      )
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, RefundTransactionRequest, RefundTransactionResponse), async (trx) => ({
        transaction: toTransaction(await ledger.refund(trx, request.platformId, request.serialNumber, now()), now()),
      }))
    },

    listLedgerEntries: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').format(request.account, 'account', ACCOUNT_NUMBER).page(request))
      onPlatform(request.platformId)
      const account = await ledger.getAccount(db, deps.sealer, request.platformId, request.account)
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { platform: request.platformId, account: account.account_ref },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => ledger.listLedgerEntries(db, request.platformId, account.account_ref, after, limit),
        cursorOf: (row) => row.entry_id,
      })
      return {
        entries: items.map((row) => ({
          entryId: row.entry_id.toString(),
          journalId: row.journal_id,
          serialNumber: row.serial_number ?? '',
          maskedAccount: row.masked_number,
          delta: { currencyCode: row.currency_code, amountMinor: row.delta_minor },
          createTime: row.created_at,
        })),
        nextPageToken,
      }
    },
  }
}
