// Business rules for cloud accounts and instance assignments (login step 0).
import { randomUUID } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { AlreadyExistsError, NotFoundError, quote } from '../runtime/errors.ts'
import * as grants from './grants.ts'
import * as store from './store/repository.ts'
import type { AccountDatabase } from './store/tables.ts'

type Db = Kysely<AccountDatabase>
type Trx = Transaction<AccountDatabase>

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

/**
 * An instance serves one account at a time, each assignment with its own id. Assigning an
 * assigned device again (to whichever account) re-rents it: the previous assignment ends, with
 * everything granted under it, in this transaction.
 */
export async function assignInstance(
  trx: Trx,
  deviceId: string,
  accountId: string,
): Promise<{ assignment: store.InstanceAssignmentRow; replaced: store.InstanceAssignmentRow | undefined }> {
  await getCloudAccount(trx, accountId)
  const assignmentId = randomUUID()
  // Twice at most: a device assigned concurrently between the two statements is replaced in the second round.
  for (let round = 0; ; round++) {
    const previous = await store.lockInstanceAssignment(trx, deviceId)
    if (previous) {
      await grants.endAssignment(trx, previous)
      const assignment = await store.replaceInstanceAssignment(trx, deviceId, accountId, assignmentId)
      if (assignment) return { assignment, replaced: previous }
    } else {
      const assignment = await store.insertInstanceAssignment(trx, deviceId, accountId, assignmentId)
      if (assignment) return { assignment, replaced: undefined }
    }
    if (round >= 3) throw new Error(`device ${deviceId}: assignment kept changing underfoot`)
  }
}

export async function getInstanceAssignment(db: Db, deviceId: string): Promise<store.InstanceAssignmentRow> {
  const row = await store.findInstanceAssignment(db, deviceId)
  if (!row) throw new NotFoundError('INSTANCE_NOT_ASSIGNED', `device ${quote(deviceId)} is not assigned to a cloud account`, { device_id: deviceId })
  return row
}

/** Ends a device's assignment and, in this transaction, everything granted under it. */
export async function releaseInstance(trx: Trx, deviceId: string): Promise<store.InstanceAssignmentRow> {
  const row = await store.deleteInstanceAssignment(trx, deviceId)
  if (!row) throw new NotFoundError('INSTANCE_NOT_ASSIGNED', `device ${quote(deviceId)} is not assigned to a cloud account`, { device_id: deviceId })
  await grants.endAssignment(trx, row)
  return row
}
