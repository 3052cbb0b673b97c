// AccountManagementService handlers: validate the request, apply the rules, map rows to replies.
import type { Kysely } from 'kysely'
import {
  type AccountManagementServiceService,
  type AssignInstanceResponse,
  AssignInstanceRequest,
  AssignInstanceResponse as AssignInstanceReply,
  type CloudAccount,
  type InstanceAssignment,
  RegisterCloudAccountRequest,
  RegisterCloudAccountResponse,
  ReleaseInstanceRequest,
  ReleaseInstanceResponse,
} from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { assertInstanceActsForItself } from '../runtime/authz.ts'
import { idempotent } from '../runtime/idempotency.ts'
import { decodePageToken, page, pageSize } from '../runtime/pagination.ts'
import { hashPassword } from '../runtime/passwords.ts'
import { type Handlers, notImplemented } from '../runtime/rpc.ts'
import type { ServiceDeps } from '../runtime/service-host.ts'
import { validate } from '../runtime/validation.ts'
import * as accounts from './accounts.ts'
import type { CloudAccountRow, InstanceAssignmentRow } from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

const toCloudAccount = (row: CloudAccountRow): CloudAccount => ({ accountId: row.account_id, createTime: row.created_at })
const toAssignment = (row: InstanceAssignmentRow): InstanceAssignment => ({ deviceId: row.device_id, accountId: row.account_id, assignTime: row.assigned_at })

export function createHandlers(deps: ServiceDeps): Handlers<typeof AccountManagementServiceService> {
  const db = deps.db as Kysely<AccountDatabase>
  return {
    registerCloudAccount: async (request, ctx) => {
      validate((v) =>
        v
          .requestId(request.requestId)
          .check(accounts.ACCOUNT_ID_PATTERN.test(request.accountId), 'account_id', 'must be 3-64 characters of [A-Za-z0-9._-]')
          .text(request.password, 'password', accounts.PASSWORD_LENGTH),
      )
      // Hash before the transaction: it is slow, and PGlite runs one transaction at a time.
      const passwordHash = await hashPassword(request.password)
      return idempotent(
        db,
        {
          caller: ctx.caller,
          method: ctx.method,
          requestId: request.requestId,
          // The password is left out of the stored request fingerprint: no fast hash of a secret in any table.
          request: { ...request, password: '' },
          requestCodec: RegisterCloudAccountRequest,
          responseCodec: RegisterCloudAccountResponse,
        },
        async (trx) => ({ cloudAccount: toCloudAccount(await accounts.registerCloudAccount(trx, request.accountId, passwordHash)) }),
      )
    },

    getCloudAccount: async (request) => {
      validate((v) => v.check(request.accountId !== '', 'account_id', 'is required'))
      return { cloudAccount: toCloudAccount(await accounts.getCloudAccount(db, request.accountId)) }
    },

    listCloudAccounts: async (request) => {
      const size = pageSize(request.pageSize)
      const after = decodePageToken(request.pageToken, null)
      const rows = await accounts.listCloudAccounts(db, after === undefined ? undefined : String(after), size + 1)
      const { items, nextPageToken } = page(rows, size, (row) => row.account_id, null)
      return { cloudAccounts: items.map(toCloudAccount), nextPageToken }
    },

    assignInstance: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id').check(request.accountId !== '', 'account_id', 'is required'))
      return idempotent(
        db,
        { caller: ctx.caller, method: ctx.method, requestId: request.requestId, request, requestCodec: AssignInstanceRequest, responseCodec: AssignInstanceReply },
        async (trx): Promise<AssignInstanceResponse> => ({ assignment: toAssignment(await accounts.assignInstance(trx, request.deviceId, request.accountId)) }),
      )
    },

    releaseInstance: async (request, ctx) => {
      validate((v) => v.requestId(request.requestId).id(request.deviceId, 'device_id'))
      return idempotent(
        db,
        { caller: ctx.caller, method: ctx.method, requestId: request.requestId, request, requestCodec: ReleaseInstanceRequest, responseCodec: ReleaseInstanceResponse },
        async (trx) => ({ released: toAssignment(await accounts.releaseInstance(trx, request.deviceId)) }),
      )
    },

    getInstanceAssignment: async (request, ctx) => {
      validate((v) => v.id(request.deviceId, 'device_id'))
      assertInstanceActsForItself(ctx.caller, request.deviceId)
      return { assignment: toAssignment(await accounts.getInstanceAssignment(db, request.deviceId)) }
    },

    startLogin: notImplemented('StartLogin'),
    getLogin: notImplemented('GetLogin'),
    verifyLogin: notImplemented('VerifyLogin'),
    redeemLogin: notImplemented('RedeemLogin'),
    validateLoginToken: notImplemented('ValidateLoginToken'),
    bindAppAccount: notImplemented('BindAppAccount'),
    bindPaymentAccount: notImplemented('BindPaymentAccount'),
    listPaymentAccounts: notImplemented('ListPaymentAccounts'),
    setDefaultPaymentAccount: notImplemented('SetDefaultPaymentAccount'),
    unbindPaymentAccount: notImplemented('UnbindPaymentAccount'),
    resolvePaymentAccount: notImplemented('ResolvePaymentAccount'),
  }
}
