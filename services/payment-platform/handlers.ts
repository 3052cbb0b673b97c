// PaymentPlatformService handlers: validate the request, apply the rules, map rows to replies.
import type { Kysely } from 'kysely'
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
  RefundTransactionRequest,
  RefundTransactionResponse,
  type Transaction,
  TransactionState,
} from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { PermissionDeniedError, UnavailableError } from '../runtime/errors.ts'
import { callOf, idempotent, idempotentAfter, idempotentFlow } from '../runtime/idempotency.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { RpcContext } from '../runtime/rpc.ts'
import { outboxSettings, startOutbox } from '../runtime/outbox.ts'
import { listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { hashPassword } from '../runtime/passwords.ts'
import type { ServiceDeps, ServiceParts } from '../runtime/service-host.ts'
import { tagged } from '../runtime/trace-context.ts'
import { CURRENCY, type Format, MAX_AMOUNT_MINOR, validate } from '../runtime/validation.ts'
import * as ledger from './ledger.ts'
import { PAYMENT_RESULT_TOPIC, paymentResultSender, queuePaymentResult } from './notifications.ts'
import { currentResultKey } from './result-keys.ts'
import type { AccountRow, TransactionRow } from './store/repository.ts'
import type { PlatformDatabase } from './store/tables.ts'

const ACCOUNT_NUMBER: Format = { pattern: /^[A-Za-z0-9]{6,34}$/, description: 'must be 6-34 letters and digits' }
const SERIAL: Format = { pattern: /^TX[0-9A-F]{20}$/, description: 'must be a serial number returned by CreatePrepay' }

const KINDS = { payer: AccountKind.ACCOUNT_KIND_PAYER, collection: AccountKind.ACCOUNT_KIND_COLLECTION, issuance: AccountKind.ACCOUNT_KIND_UNSPECIFIED } as const
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
const toTransaction = (row: TransactionRow): Transaction => ({
  platformId: row.platform_id,
  serialNumber: row.serial_number,
  state: STATES[ledger.effectiveState(row)],
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

export function createHandlers(deps: ServiceDeps): ServiceParts<typeof PaymentPlatformServiceService> {
  const db = deps.db as Kysely<PlatformDatabase>
  const settings = deps.config.payment
  const platforms = settings.platformIds
  const outbox = startOutbox({
    db,
    tracer: deps.tracer,
    log: deps.log,
    ...outboxSettings(deps.config),
    handlers: { [PAYMENT_RESULT_TOPIC]: paymentResultSender(deps.peers) },
  })
  const onPlatform = (platformId: string) => ledger.assertPlatform(platforms, platformId)
  /**
   * A terminal acts on a transaction only if the prepay was made for it, and only while
   * PaymentManagement says it may still act for the order. When PaymentManagement cannot answer,
   * the prepay's own terminal may still pay (the payment is reported once it is back).
   */
  const assertTerminalMayAct = async (ctx: RpcContext, txn: TransactionRow): Promise<void> => {
    if (ctx.caller.role !== 'terminal') return
    const refuse = (why: string) => new PermissionDeniedError('TERMINAL_NOT_ALLOWED', `terminal ${ctx.caller.id} may not act on transaction ${txn.serial_number}: ${why}`)
    if (txn.terminal_id !== ctx.caller.id) throw refuse('the prepay was made for another terminal')
    let verdict
    try {
      verdict = await callPeer(
        'payment-management',
        unaryCall(
          deps.peers.get('payment-management'),
          'authorizeTerminal',
          { platformId: txn.platform_id, serialNumber: txn.serial_number, terminalId: ctx.caller.id },
          { signal: ctx.signal, deadlineMs: 2_000 },
        ),
      )
    } catch (error) {
      if (error instanceof UnavailableError) return
      throw error
    }
    if (!verdict.allowed) throw refuse(verdict.reason.slice(0, 200))
  }
  /** The transaction, as the caller may see it: a terminal that may not act on it learns nothing, not even that it exists. */
  const transactionFor = async (ctx: RpcContext, platformId: string, serialNumber: string): Promise<TransactionRow> => {
    const txn = await ledger.findTransaction(db, platformId, serialNumber)
    if (!txn && ctx.caller.role === 'terminal') {
      throw new PermissionDeniedError('TERMINAL_NOT_ALLOWED', `terminal ${ctx.caller.id} may not act on transaction ${serialNumber}: the prepay was made for another terminal`)
    }
    if (!txn) return ledger.getTransaction(db, platformId, serialNumber)
    // The merchant's order id is PaymentManagement's order id: what follows joins the order's trace tags.
    return tagged({ orderId: txn.merchant_order_id, platformId: txn.platform_id }, async () => {
      await assertTerminalMayAct(ctx, txn)
      return txn
    })
  }

  const handlers: ServiceParts<typeof PaymentPlatformServiceService>['handlers'] = {
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
        const resultKey = await currentResultKey(trx, deps.sealer, request.platformId, settings.resultKeyRotationMs)
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
        )
        return { transaction: toTransaction(created), resultKey }
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
      const reply = await idempotentFlow(db, callOf(ctx, request, PayRequest, PayResponse), async (commit) => {
        // Before the password is looked at: a stranger's guesses never count against the payer.
        const txn = await transactionFor(ctx, request.platformId, request.serialNumber)
        // The merchant's order id is PaymentManagement's order id: the payment joins the order's trace tags.
        return tagged({ orderId: txn.merchant_order_id, platformId: txn.platform_id }, async () => {
          await ledger.checkPaymentPassword(db, txn, request.paymentPassword, settings)
          return commit(async (trx) => {
            const settled = await ledger.settle(trx, request.platformId, request.serialNumber)
            await queuePaymentResult(trx, deps.sealer, settled)
            return { transaction: toTransaction(settled) }
          })
        })
      })
      outbox.kick()
      return reply
    },

    getTransaction: async (request, ctx) => {
      validate((v) => v.id(request.platformId, 'platform_id').format(request.serialNumber, 'serial_number', SERIAL))
      onPlatform(request.platformId)
      return { transaction: toTransaction(await transactionFor(ctx, request.platformId, request.serialNumber)) }
    },

    cancelTransaction: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.platformId, 'platform_id').format(request.serialNumber, 'serial_number', SERIAL))
      onPlatform(request.platformId)
      return idempotent(db, callOf(ctx, request, CancelTransactionRequest, CancelTransactionResponse), async (trx) => ({
        transaction: toTransaction(await ledger.cancel(trx, request.platformId, request.serialNumber)),
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
        transaction: toTransaction(await ledger.refund(trx, request.platformId, request.serialNumber)),
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
  return { handlers, introspect: () => ({ outbox_dead_letters: outbox.deadLetters() }), onStop: () => outbox.stop() }
}
