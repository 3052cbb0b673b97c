// AccountManagementService handlers: validate the request, apply the rules, map rows to replies.
import { EventKind } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import {
  type AccountManagementServiceService,
  type AccountTerminal,
  EnrollTerminalRequest,
  EnrollTerminalResponse,
  RemoveTerminalRequest,
  RemoveTerminalResponse,
  type AssignInstanceResponse,
  AssignInstanceRequest,
  AssignInstanceResponse as AssignInstanceReply,
  BindAppAccountRequest,
  BindAppAccountResponse,
  BindPaymentAccountRequest,
  BindPaymentAccountResponse,
  type PaymentAccountBinding,
  SetDefaultPaymentAccountRequest,
  SetDefaultPaymentAccountResponse,
  UnbindPaymentAccountRequest,
  UnbindPaymentAccountResponse,
  type CloudAccount,
  type InstanceAssignment,
  type Login,
  LoginState,
  RedeemLoginRequest,
  RedeemLoginResponse,
  StartLoginRequest,
  StartLoginResponse,
  ValidateLoginTokenRequest,
  ValidateLoginTokenResponse,
  VerifyLoginRequest,
  VerifyLoginResponse,
  RegisterCloudAccountRequest,
  RegisterCloudAccountResponse,
  ReleaseInstanceRequest,
  ReleaseInstanceResponse,
} from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { InvalidArgumentError, PermissionDeniedError } from '../runtime/errors.ts'
import { assertMayActForDevice } from '../runtime/device-access.ts'
import { callOf, idempotent, idempotentAfter, idempotentFlowReadingAnswer, replayOf } from '../runtime/idempotency.ts'
import { registerRentalBoundary } from '../runtime/rental-boundary.ts'
import { channelCheckVia, publishEvent } from '../runtime/mesh-calls.ts'
import { SharedRateLimiter } from '../runtime/rate-limit.ts'
import { KEY_CURSOR, listPage, SEQUENCE_CURSOR } from '../runtime/pagination.ts'
import { MOST_TERMINALS_PER_ACCOUNT } from '../runtime/config.ts'
import { hashPassword } from '../runtime/passwords.ts'
import type { Handlers } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { bearerToken, type Format, UUID_PATTERN, validate } from '../runtime/validation.ts'
import * as accounts from './accounts.ts'
import * as grants from './grants.ts'
import * as logins from './login.ts'
import * as payments from './payment-accounts.ts'
import * as store from './store/repository.ts'
import type { AccountTerminalRow, CloudAccountRow, InstanceAssignmentRow, LoginRow, PaymentBindingRow } from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'
import * as terminals from './terminals.ts'
import type { Shared } from './workers.ts'

const toCloudAccount = (row: CloudAccountRow): CloudAccount => ({ accountId: row.account_id, createTime: row.created_at })
const LOGIN_STATES: Record<logins.EffectiveLoginState, LoginState> = {
  pending: LoginState.LOGIN_STATE_PENDING,
  verified: LoginState.LOGIN_STATE_VERIFIED,
  rejected: LoginState.LOGIN_STATE_REJECTED,
  redeemed: LoginState.LOGIN_STATE_REDEEMED,
  expired: LoginState.LOGIN_STATE_EXPIRED,
  ended: LoginState.LOGIN_STATE_ENDED,
}

/** The binding code goes only to the instance that shows it. */
const toLogin = (row: LoginRow, withBindingCode: boolean, now: Date): Login => ({
  loginId: row.login_id,
  deviceId: row.device_id,
  state: LOGIN_STATES[logins.effectiveState(row, now)],
  bindingCode: withBindingCode ? row.binding_code : '',
  createTime: row.created_at,
  expireTime: row.expires_at,
})

const ACCOUNT_ID: Format = { pattern: accounts.ACCOUNT_ID_PATTERN, description: 'must be 3-64 characters of [A-Za-z0-9._-]' }
/** Login ids are base64url; 16 random bytes make 22 characters. */
const LOGIN_ID: Format = { pattern: /^[A-Za-z0-9_-]{22}$/, description: 'must be a login id returned by StartLogin' }
const LOGIN_TOKEN = bearerToken('RedeemLogin')
const BINDING_CODE: Format = { pattern: /^\d{6}$/, description: 'must be the 6 digits shown on the instance' }
const PAYER_ACCOUNT: Format = { pattern: /^[A-Za-z0-9]{6,34}$/, description: 'must be 6-34 letters and digits' }
const BINDING_ID: Format = { pattern: UUID_PATTERN, description: 'must be a binding id returned by BindPaymentAccount' }
const toBinding = (row: PaymentBindingRow): PaymentAccountBinding => ({
  bindingId: row.binding_id,
  platformId: row.platform_id,
  maskedPayerAccount: row.masked_payer,
  isDefault: row.is_default,
  bindTime: row.bound_at,
})

const toTerminal = (row: AccountTerminalRow): AccountTerminal => ({
  terminalId: row.terminal_id,
  accountId: row.account_id,
  enrollmentId: row.enrollment_id,
  displayName: row.display_name,
  enrollTime: row.enrolled_at,
  lastSeenTime: row.last_seen_at,
})

const toAssignment = (row: InstanceAssignmentRow): InstanceAssignment => ({
  deviceId: row.device_id,
  accountId: row.account_id,
  assignTime: row.assigned_at,
  assignmentId: row.assignment_id,
})

export function createHandlers(deps: ServiceDeps<AccountDatabase>, { outbox }: Shared): Handlers<typeof AccountManagementServiceService> {
  const db = deps.db
  // An instance's stored answers are its device's current assignment's only. (A terminal's enrolment
  // answers end with the enrolment: terminals.remove forgets them.)
  registerRentalBoundary(db, (caller, eb) => (caller.role === 'instance' ? store.assignmentBeganAt(eb, caller.id) : undefined))
  const now = () => deps.clock.now()
  const settings = deps.config.login
  // GetLogin is a fallback for clients that cannot follow the pipe: 2 per second per caller
  // (bursts of 5), counted in the database so that every replica takes from the same bucket.
  const getLoginLimiter = new SharedRateLimiter(db, 'GetLogin', 2, 5)
  /**
   * After a release (or re-renting) committed: waits, bounded, for AppService, InstanceEvents and
   * PaymentManagement to acknowledge its end; a caller that sees true sees those grants gone.
   * Computed afresh on every answer, a replayed one included.
   */
  const grantsEnded = (ended: InstanceAssignment | undefined): Promise<boolean> =>
    ended ? outbox.delivered(grants.deliveryIdsOf(ended.assignmentId), settings.releaseWaitMs) : Promise.resolve(true)
  return {
    registerCloudAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .format(request.accountId, 'account_id', ACCOUNT_ID)
          .text(request.password, 'password', accounts.PASSWORD_LENGTH),
      )
      // Hash before the transaction (it is slow, and PGlite runs one transaction at a time), and only once.
      return idempotentAfter(
        db,
        callOf(ctx, request, RegisterCloudAccountRequest, RegisterCloudAccountResponse),
        () => hashPassword(request.password),
        async (trx, passwordHash) => ({ cloudAccount: toCloudAccount(await accounts.registerCloudAccount(trx, request.accountId, passwordHash)) }),
      )
    },

    getCloudAccount: async (request) => {
      validate((v) => v.format(request.accountId, 'account_id', ACCOUNT_ID))
      return { cloudAccount: toCloudAccount(await accounts.getCloudAccount(db, request.accountId)) }
    },

    listCloudAccounts: async (request, ctx) => {
      validate((v) => v.page(request))
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: null,
        cursor: KEY_CURSOR,
        fetch: (after, limit) => accounts.listCloudAccounts(db, after, limit),
        cursorOf: (row) => row.account_id,
      })
      return { cloudAccounts: items.map(toCloudAccount), nextPageToken }
    },

    assignInstance: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.accountId, 'account_id', ACCOUNT_ID),
      )
      const reply = await idempotent(db, callOf(ctx, request, AssignInstanceRequest, AssignInstanceReply), async (trx): Promise<AssignInstanceResponse> => {
        const { assignment, replaced } = await accounts.assignInstance(trx, request.deviceId, request.accountId)
        return { assignment: toAssignment(assignment), replaced: replaced && toAssignment(replaced), grantsEnded: false }
      })
      return { ...reply, grantsEnded: await grantsEnded(reply.replaced) }
    },

    releaseInstance: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id'))
      const reply = await idempotent(db, callOf(ctx, request, ReleaseInstanceRequest, ReleaseInstanceResponse), async (trx) => ({
        released: toAssignment(await accounts.releaseInstance(trx, request.deviceId)),
        grantsEnded: false,
      }))
      return { ...reply, grantsEnded: await grantsEnded(reply.released) }
    },

    getInstanceAssignment: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return { assignment: toAssignment(await accounts.getInstanceAssignment(db, request.deviceId)) }
    },

    startLogin: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return idempotent(db, callOf(ctx, request, StartLoginRequest, StartLoginResponse), async (trx) => ({
        login: toLogin(await logins.startLogin(trx, request.deviceId, settings, now()), true, now()),
      }))
    },

    getLogin: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').format(request.loginId, 'login_id', LOGIN_ID))
      await getLoginLimiter.take(`${ctx.caller.role}/${ctx.caller.id}`, 'GetLogin')
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      return { login: toLogin(await logins.getLogin(db, request.deviceId, request.loginId), ctx.caller.role === 'instance', now()) }
    },

    verifyLogin: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.loginId, 'login_id', LOGIN_ID)
          .format(request.bindingCode, 'binding_code', BINDING_CODE)
          .text(request.password, 'password', { min: 1, max: 256 }),
      )
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      const call = callOf(ctx, request, VerifyLoginRequest, VerifyLoginResponse)
      const reply = await idempotentFlowReadingAnswer(db, call, async (commit, stored) => {
        const check = await logins.checkCredentials(db, request, now(), stored)
        if ('answered' in check) return check.answered
        return commit(async (trx) => ({ login: toLogin(await logins.recordVerification(trx, check, settings, now()), false, now()) }))
      })
      // Told after the commit; a retry with the same request_id tells again (stored once).
      const verified = reply.login?.state === LoginState.LOGIN_STATE_VERIFIED
      await publishEvent(
        deps.peers,
        {
          deviceId: request.deviceId,
          kind: verified ? EventKind.EVENT_KIND_LOGIN_VERIFIED : EventKind.EVENT_KIND_LOGIN_REJECTED,
          subjectId: request.loginId,
          // Told in the login's rental even when a release lands between the commit and this call.
          subjectCreatedAt: reply.login?.createTime,
        },
        ctx.signal,
      )
      return reply
    },

    redeemLogin: async (request, ctx) => {
      validate((v) =>
        v.requestId(request.requestId).id(request.deviceId, 'device_id').format(request.loginId, 'login_id', LOGIN_ID),
      )
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return idempotent(db, callOf(ctx, request, RedeemLoginRequest, RedeemLoginResponse), async (trx) => {
        const { token, expiresAt } = await logins.redeemLogin(trx, request.deviceId, request.loginId, settings, now())
        return { loginToken: token, expireTime: expiresAt }
      })
    },

    validateLoginToken: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .format(request.loginToken, 'login_token', LOGIN_TOKEN)
          .id(request.deviceId, 'device_id'),
      )
      return idempotent(db, callOf(ctx, request, ValidateLoginTokenRequest, ValidateLoginTokenResponse), async (trx) => {
        const { accountId, appAccountId, assignmentId } = await logins.consumeLoginToken(trx, request.loginToken, request.deviceId, now())
        return { accountId, deviceId: request.deviceId, appAccountId: appAccountId ?? '', assignmentId }
      })
    },

    bindAppAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .format(request.accountId, 'account_id', ACCOUNT_ID)
          .id(request.appAccountId, 'app_account_id'),
      )
      return idempotent(db, callOf(ctx, request, BindAppAccountRequest, BindAppAccountResponse), async (trx) => {
        const row = await logins.bindAppAccount(trx, request.accountId, request.appAccountId)
        return { binding: { accountId: row.account_id, appAccountId: row.app_account_id, bindTime: row.bound_at } }
      })
    },
    bindPaymentAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .id(request.platformId, 'platform_id')
          .format(request.payerAccount, 'payer_account', PAYER_ACCOUNT),
      )
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      return idempotent(db, callOf(ctx, request, BindPaymentAccountRequest, BindPaymentAccountResponse), async (trx) => ({
        binding: toBinding(await payments.bind(trx, deps.sealer, request)),
      }))
    },

    listPaymentAccounts: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id').page(request))
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { deviceId: request.deviceId },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => payments.list(db, request.deviceId, after, limit),
        cursorOf: (row) => row.seq,
      })
      return { bindings: items.map(toBinding), nextPageToken }
    },

    setDefaultPaymentAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.bindingId, 'binding_id', BINDING_ID),
      )
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      return idempotent(db, callOf(ctx, request, SetDefaultPaymentAccountRequest, SetDefaultPaymentAccountResponse), async (trx) => ({
        binding: toBinding(await payments.setDefault(trx, request.deviceId, request.bindingId)),
      }))
    },

    unbindPaymentAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .id(request.deviceId, 'device_id')
          .format(request.bindingId, 'binding_id', BINDING_ID),
      )
      await assertMayActForDevice(ctx.caller, request.deviceId, channelCheckVia(deps.peers, ctx.signal))
      return idempotent(db, callOf(ctx, request, UnbindPaymentAccountRequest, UnbindPaymentAccountResponse), async (trx) => ({
        binding: toBinding(await payments.unbind(trx, request.deviceId, request.bindingId)),
      }))
    },

    resolvePaymentAccount: async (request) => {
      // An empty binding_id means the default binding.
      validate((v) => v.id(request.deviceId, 'device_id').format(request.bindingId, 'binding_id', BINDING_ID, { optional: true }))
      const { row, payerAccount } = await payments.resolve(db, deps.sealer, request.deviceId, request.bindingId)
      return { bindingId: row.binding_id, platformId: row.platform_id, payerAccount }
    },

    enrollTerminal: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .format(request.accountId, 'account_id', ACCOUNT_ID)
          .text(request.password, 'password', { min: 1, max: 256 })
          .text(request.displayName, 'display_name', terminals.DISPLAY_NAME_LENGTH),
      )
      const call = callOf(ctx, request, EnrollTerminalRequest, EnrollTerminalResponse)
      const replay = await replayOf(db, call)
      if (replay) return replay
      // The terminal enrolled is the caller's certificate, never a field. Verified as VerifyLogin verifies, outside the transaction.
      const check = await terminals.checkCredential(db, { accountId: request.accountId, terminalId: ctx.caller.id, password: request.password }, now())
      if (!check.verified) return terminals.refuse(db, check, settings)
      return idempotent(db, call, async (trx) => ({
        terminal: toTerminal(await terminals.enroll(trx, check, request.displayName, { ...settings, maxPerAccount: deps.config.terminals.maxPerAccount })),
      }))
    },

    listAccountTerminals: async (request, ctx) => {
      validate((v) => v.format(request.accountId, 'account_id', ACCOUNT_ID, { optional: true }).page(request))
      let accountId = request.accountId
      if (ctx.caller.role === 'terminal') {
        const own = await terminals.ownEnrollment(db, ctx.caller)
        if (accountId !== '' && accountId !== own.account_id) {
          throw new PermissionDeniedError('NOT_OWN_ACCOUNT', `terminal ${ctx.caller.id} may list only the terminals of the account it is enrolled in`, { field: 'account_id' })
        }
        accountId = own.account_id
      } else if (accountId === '') {
        throw InvalidArgumentError.field('account_id', 'is required (the account whose terminals to list)')
      }
      const { items, nextPageToken } = await listPage(ctx, request, {
        filter: { accountId },
        cursor: SEQUENCE_CURSOR,
        fetch: (after, limit) => store.listAccountTerminals(db, accountId, after, limit),
        cursorOf: (row) => row.seq,
      })
      return { terminals: items.map(toTerminal), nextPageToken }
    },

    removeTerminal: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.terminalId, 'terminal_id'))
      const reply = await idempotent(db, callOf(ctx, request, RemoveTerminalRequest, RemoveTerminalResponse), async (trx) => ({
        terminal: toTerminal(await terminals.remove(trx, ctx.caller, request.terminalId)),
        grantsEnded: false,
      }))
      // Computed afresh on every answer, a replayed one included.
      return { ...reply, grantsEnded: await outbox.delivered(terminals.deliveryIdsOf(reply.terminal!.enrollmentId), settings.releaseWaitMs) }
    },

    listTerminalsOfDevice: async (request) => {
      validate((v) => v.id(request.deviceId, 'device_id'))
      // All of them, also when the limit was lowered after some enrolled.
      const { accountId, terminals: rows } = await terminals.ofDevice(db, request.deviceId, MOST_TERMINALS_PER_ACCOUNT)
      return { accountId, terminals: rows.map(toTerminal) }
    },

    getTerminalEnrollment: async (request) => {
      validate((v) => v.id(request.terminalId, 'terminal_id').id(request.deviceId, 'device_id', { optional: true }))
      const { row, servesDevice } = await terminals.enrollmentOf(db, request.terminalId, request.deviceId, request.seen)
      return { terminal: toTerminal(row), servesDevice }
    },
  }
}
