// SQL of the account_management schema. Functions take the database or a transaction.
import type { Kysely, Selectable } from 'kysely'
import type { AccountDatabase, CloudAccountsTable, InstanceAssignmentsTable } from './tables.ts'

type Db = Kysely<AccountDatabase>
export type CloudAccountRow = Selectable<CloudAccountsTable>
export type InstanceAssignmentRow = Selectable<InstanceAssignmentsTable>

/** Inserts an account; false when the id is taken. */
export async function insertCloudAccount(db: Db, accountId: string, passwordHash: string): Promise<CloudAccountRow | undefined> {
  return db
    .insertInto('cloud_accounts')
    .values({ account_id: accountId, password_hash: passwordHash })
    .onConflict((oc) => oc.column('account_id').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findCloudAccount(db: Db, accountId: string): Promise<CloudAccountRow | undefined> {
  return db.selectFrom('cloud_accounts').selectAll().where('account_id', '=', accountId).executeTakeFirst()
}

/** Accounts after `afterAccountId` in id order; `limit` rows at most. */
export async function listCloudAccounts(db: Db, afterAccountId: string | undefined, limit: number): Promise<CloudAccountRow[]> {
  let query = db.selectFrom('cloud_accounts').selectAll().orderBy('account_id').limit(limit)
  if (afterAccountId !== undefined) query = query.where('account_id', '>', afterAccountId)
  return query.execute()
}

/** Records (or moves) a device's assignment to an account. */
export async function upsertInstanceAssignment(db: Db, deviceId: string, accountId: string): Promise<InstanceAssignmentRow> {
  return db
    .insertInto('instance_assignments')
    .values({ device_id: deviceId, account_id: accountId })
    .onConflict((oc) => oc.column('device_id').doUpdateSet({ account_id: accountId, assigned_at: new Date() }))
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findInstanceAssignment(db: Db, deviceId: string): Promise<InstanceAssignmentRow | undefined> {
  return db.selectFrom('instance_assignments').selectAll().where('device_id', '=', deviceId).executeTakeFirst()
}

export async function deleteInstanceAssignment(db: Db, deviceId: string): Promise<InstanceAssignmentRow | undefined> {
  return db.deleteFrom('instance_assignments').where('device_id', '=', deviceId).returningAll().executeTakeFirst()
}
