// Business rules of payment account bindings (payment step 0): a terminal binds accounts to the
// cloud account behind its device; the first binding becomes the default; only PaymentManagement
// ever sees a payer account number again, to send prepay info to its platform.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { AlreadyExistsError, FailedPreconditionError, NotFoundError, quote } from '../runtime/errors.ts'
import { maskAccount, type Sealer } from '../runtime/sealing.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

type Db = Kysely<AccountDatabase>

const payerRef = (sealer: Sealer, platformId: string, payer: string) => sealer.fingerprint(`${platformId}\0${payer}`, 'payment-binding')

async function accountOfDevice(db: Db, deviceId: string): Promise<string> {
  const assignment = await store.findInstanceAssignment(db, deviceId)
  if (!assignment) throw notAssigned(deviceId)
  return assignment.account_id
}

const notAssigned = (deviceId: string) => new FailedPreconditionError('INSTANCE_NOT_ASSIGNED', `device ${deviceId} is not assigned to a cloud account`)
const bindingNotFound = (bindingId: string) => new NotFoundError('BINDING_NOT_FOUND', `binding_id: no binding ${quote(bindingId)} for this device's account`)

export async function bind(db: Db, sealer: Sealer, input: { deviceId: string; platformId: string; payerAccount: string; makeDefault: boolean }): Promise<store.PaymentBindingRow> {
  const accountId = await accountOfDevice(db, input.deviceId)
  const bindingId = randomUUID()
  const inserted = await store.insertPaymentBinding(db, {
    bindingId,
    accountId,
    platformId: input.platformId,
    payerRef: payerRef(sealer, input.platformId, input.payerAccount),
    sealedPayer: sealer.seal(input.payerAccount, bindingId),
    maskedPayer: maskAccount(input.payerAccount),
  })
  if (!inserted) throw new AlreadyExistsError('PAYMENT_ACCOUNT_ALREADY_BOUND', `payer_account is already bound on platform ${input.platformId}`)
  const first = (await store.countPaymentBindings(db, accountId)) === 1
  if (input.makeDefault || first) return (await store.setDefaultPaymentBinding(db, accountId, bindingId))!
  return inserted
}

async function binding(db: Db, accountId: string, bindingId: string): Promise<store.PaymentBindingRow> {
  const row = await store.findPaymentBinding(db, accountId, bindingId)
  if (!row) throw bindingNotFound(bindingId)
  return row
}

export async function setDefault(db: Db, deviceId: string, bindingId: string): Promise<store.PaymentBindingRow> {
  const accountId = await accountOfDevice(db, deviceId)
  await binding(db, accountId, bindingId)
  return (await store.setDefaultPaymentBinding(db, accountId, bindingId))!
}

export async function unbind(db: Db, deviceId: string, bindingId: string): Promise<store.PaymentBindingRow> {
  const accountId = await accountOfDevice(db, deviceId)
  await binding(db, accountId, bindingId)
  return (await store.deletePaymentBinding(db, accountId, bindingId))!
}

export async function list(db: Db, deviceId: string, afterSeq: bigint | undefined, limit: number): Promise<store.PaymentBindingRow[]> {
  return store.listPaymentBindings(db, await accountOfDevice(db, deviceId), afterSeq, limit)
}

/** The binding the person picked (or the default) with its payer account in clear. */
export async function resolve(db: Db, sealer: Sealer, deviceId: string, bindingId: string): Promise<{ row: store.PaymentBindingRow; payerAccount: string }> {
  // The device's account and the binding in one read; the refusals are those of the two steps.
  const found = await store.findDeviceBinding(db, deviceId, bindingId || undefined)
  if (!found) throw notAssigned(deviceId)
  const row = found.binding
  if (!row && bindingId) throw bindingNotFound(bindingId)
  if (!row) throw new FailedPreconditionError('NO_DEFAULT_PAYMENT_ACCOUNT', 'binding_id is empty and the account has no default payment account; bind one or pick one')
  return { row, payerAccount: sealer.open(row.sealed_payer, row.binding_id) }
}
