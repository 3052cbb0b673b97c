// Business rules for cloud accounts and instance assignments (login step 0).
import type { Kysely } from 'kysely'
import { AlreadyExistsError, NotFoundError, quote } from '../runtime/errors.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

type Db = Kysely<AccountDatabase>

export const ACCOUNT_ID_PATTERN = /^[A-Za-z0-9._-]{3,64}$/
export const PASSWORD_LENGTH = { min: 8, max: 256 } as const

export async function registerCloudAccount(db: Db, accountId: string, passwordHash: string): Promise<store.CloudAccountRow> {
  const row = await store.insertCloudAccount(db, accountId, passwordHash)
  if (!row) throw new AlreadyExistsError('ACCOUNT_EXISTS', `cloud account ${quote(accountId)} already exists`, { account_id: accountId })
  return row
}

export async function getCloudAccount(db: Db, accountId: string): Promise<store.CloudAccountRow> {
  const row = await store.findCloudAccount(db, accountId)
  if (!row) throw new NotFoundError('ACCOUNT_NOT_FOUND', `cloud account ${quote(accountId)} does not exist`, { account_id: accountId })
  return row
}

export function listCloudAccounts(db: Db, afterAccountId: string | undefined, limit: number): Promise<store.CloudAccountRow[]> {
  return store.listCloudAccounts(db, afterAccountId, limit)
}

/** An instance serves one account at a time; assigning it again moves it to the new account. */
export async function assignInstance(db: Db, deviceId: string, accountId: string): Promise<store.InstanceAssignmentRow> {
  await getCloudAccount(db, accountId)
  return store.upsertInstanceAssignment(db, deviceId, accountId)
}

export async function getInstanceAssignment(db: Db, deviceId: string): Promise<store.InstanceAssignmentRow> {
  const row = await store.findInstanceAssignment(db, deviceId)
  if (!row) throw new NotFoundError('INSTANCE_NOT_ASSIGNED', `device ${quote(deviceId)} is not assigned to a cloud account`, { device_id: deviceId })
  return row
}

export async function releaseInstance(db: Db, deviceId: string): Promise<store.InstanceAssignmentRow> {
  const row = await store.deleteInstanceAssignment(db, deviceId)
  if (!row) throw new NotFoundError('INSTANCE_NOT_ASSIGNED', `device ${quote(deviceId)} is not assigned to a cloud account`, { device_id: deviceId })
  return row
}
