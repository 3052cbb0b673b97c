// SQL of the account_management schema. Functions take the database or a transaction.
import { type ExpressionBuilder, type Kysely, type Selectable, sql, type Transaction } from 'kysely'
import { type AnswerColumn, readingStoredAnswer, type StoredAnswer } from '../../runtime/idempotency.ts'
import { queryTemplate } from '../../runtime/query-template.ts'
import type {
  AccountDatabase,
  AccountTerminalsTable,
  AppAccountBindingsTable,
  CloudAccountsTable,
  InstanceAssignmentsTable,
  LoginStateColumn,
  LoginsTable,
  LoginTokensTable,
  PaymentBindingsTable,
  ThrottleScope,
} from './tables.ts'

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

/** Records a free device's assignment; undefined when the device is assigned already. */
export async function insertInstanceAssignment(db: Db, deviceId: string, accountId: string, assignmentId: string): Promise<InstanceAssignmentRow | undefined> {
  return db
    .insertInto('instance_assignments')
    .values({ device_id: deviceId, account_id: accountId, assignment_id: assignmentId })
    .onConflict((oc) => oc.column('device_id').doNothing())
    .returningAll()
    .executeTakeFirst()
}

/** Replaces an assigned device's assignment with a new one; undefined when the device is free. */
export async function replaceInstanceAssignment(db: Db, deviceId: string, accountId: string, assignmentId: string): Promise<InstanceAssignmentRow | undefined> {
  return db
    .updateTable('instance_assignments')
    .set({ account_id: accountId, assignment_id: assignmentId, assigned_at: sql`now()` })
    .where('device_id', '=', deviceId)
    .returningAll()
    .executeTakeFirst()
}

export async function findInstanceAssignment(db: Db, deviceId: string): Promise<InstanceAssignmentRow | undefined> {
  return db.selectFrom('instance_assignments').selectAll().where('device_id', '=', deviceId).executeTakeFirst()
}

/** The device's assignment, locked against release and re-renting until the transaction ends. */
export async function lockInstanceAssignment(trx: Transaction<AccountDatabase>, deviceId: string): Promise<InstanceAssignmentRow | undefined> {
  return trx.selectFrom('instance_assignments').selectAll().where('device_id', '=', deviceId).forUpdate().executeTakeFirst()
}

/** The database's clock: the one that stamps channels and orders in every service's schema. */
export async function databaseNow(db: Db): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db)
  return new Date(rows[0]!.now)
}

export async function deleteInstanceAssignment(db: Db, deviceId: string): Promise<InstanceAssignmentRow | undefined> {
  return db.deleteFrom('instance_assignments').where('device_id', '=', deviceId).returningAll().executeTakeFirst()
}

export type LoginRow = Selectable<LoginsTable>
export type LoginTokenRow = Selectable<LoginTokensTable>
export type AppAccountBindingRow = Selectable<AppAccountBindingsTable>

/**
 * Starts a login under the device's current assignment, in one statement: the assignment's row is
 * read and held (shared) until the transaction ends, so a release or re-renting waits and then
 * ends this login too, and the login takes its account and assignment. Undefined when the device is not assigned.
 */
export async function insertLoginUnderAssignment(
  trx: Transaction<AccountDatabase>,
  login: { loginId: string; deviceId: string; bindingCode: string; expiresAt: Date },
): Promise<LoginRow | undefined> {
  return INSERT_LOGIN_UNDER_ASSIGNMENT.first(trx, login)
}
const INSERT_LOGIN_UNDER_ASSIGNMENT = queryTemplate(
  'account-management.insertLoginUnderAssignment',
  (trx: Db, login: { loginId: string; deviceId: string; bindingCode: string; expiresAt: Date }) =>
    trx
      .insertInto('logins')
      .columns(['login_id', 'device_id', 'account_id', 'assignment_id', 'binding_code', 'state', 'expires_at'])
      .expression((eb) =>
        eb
          .selectFrom('instance_assignments')
          .select([
            sql<string>`${login.loginId}::text`.as('login_id'),
            'device_id',
            'account_id',
            'assignment_id',
            sql<string>`${login.bindingCode}::text`.as('binding_code'),
            sql<LoginStateColumn>`'pending'`.as('state'),
            sql<Date>`${login.expiresAt}::timestamptz`.as('expires_at'),
          ])
          .where('device_id', '=', login.deviceId)
          .forShare(),
      )
      .returningAll(),
)

/** Ends the device's unexpired pending and verified logins; returns how many. */
export async function endLoginsOfDevice(db: Db, deviceId: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('logins')
    .set({ state: 'ended', updated_at: now })
    .where('device_id', '=', deviceId)
    .where('state', 'in', ['pending', 'verified'])
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Ends the device's unexpired tokens not used yet; returns how many. */
export async function endTokensOfDevice(db: Db, deviceId: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('login_tokens')
    .set({ ended_at: now })
    .where('device_id', '=', deviceId)
    .where('consumed_at', 'is', null)
    .where('ended_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** When the device's current assignment (its rental) began (rental-boundary.ts), as a scalar subquery; null while it is free. */
export const assignmentBeganAt = (eb: ExpressionBuilder<any, any>, deviceId: string) =>
  (eb as ExpressionBuilder<AccountDatabase, never>).selectFrom('instance_assignments').select('assigned_at').where('device_id', '=', deviceId)

export async function findLogin(db: Db, loginId: string): Promise<LoginRow | undefined> {
  return db.selectFrom('logins').selectAll().where('login_id', '=', loginId).executeTakeFirst()
}

/** The login was started under its device's current assignment (rental-boundary.ts): older logins are of an ended rental. */
function startedUnderCurrentAssignment(eb: ExpressionBuilder<AccountDatabase, 'logins'>) {
  return eb.exists(
    eb
      .selectFrom('instance_assignments')
      .select(sql<number>`1`.as('one'))
      .whereRef('instance_assignments.device_id', '=', 'logins.device_id')
      .where((w) =>
        w.or([
          w('logins.assignment_id', '=', w.ref('instance_assignments.assignment_id')),
          // Logins older than assignment ids: by the account the device serves.
          w.and([w('logins.assignment_id', 'is', null), w('logins.account_id', '=', w.ref('instance_assignments.account_id'))]),
        ]),
      ),
  )
}

/** The device's login if it was started under the device's current assignment; a login of an ended rental is not found. */
export async function findLoginOfCurrentRental(db: Db, deviceId: string, loginId: string): Promise<LoginRow | undefined> {
  return db.selectFrom('logins').selectAll().where('login_id', '=', loginId).where('device_id', '=', deviceId).where(startedUnderCurrentAssignment).executeTakeFirst()
}

/**
 * What verifying a login reads before the password hash, in one statement: the login, the
 * device's assignment, both locks, the hash, and the call's stored answer (none outside a call).
 */
export async function findLoginToVerify(db: Db, loginId: string, stored?: StoredAnswer<unknown>) {
  const row = await FIND_LOGIN_TO_VERIFY.first(db, { loginId }, stored)
  if (!row) return undefined
  const { current_assignment_id, current_account_id, account_locked_until, device_locked_until, account_failures, device_failures, password_hash, stored_answer, ...login } = row
  return {
    storedAnswer: stored_answer,
    login: login as LoginRow,
    assignment: current_assignment_id && current_account_id ? { assignment_id: current_assignment_id, account_id: current_account_id } : undefined,
    lockedUntil: { account: account_locked_until ?? null, device: device_locked_until ?? null },
    /** Whether a failure count is kept for the account and for the device (a success clears only those). */
    counted: { account: account_failures != null, device: device_failures != null } as Readonly<Partial<Record<ThrottleScope, boolean>>>,
    passwordHash: password_hash ?? undefined,
  }
}

const FIND_LOGIN_TO_VERIFY = readingStoredAnswer('account-management.findLoginToVerify', (db: Db, v: { loginId: string }, answer: AnswerColumn) =>
  db
    .selectFrom('logins')
    .leftJoin('instance_assignments', 'instance_assignments.device_id', 'logins.device_id')
    .selectAll('logins')
    .select(['instance_assignments.assignment_id as current_assignment_id', 'instance_assignments.account_id as current_account_id'])
    .select((eb) => [
      eb.selectFrom('login_failures').select('locked_until').where('scope', '=', 'account').whereRef('subject', '=', 'logins.account_id').as('account_locked_until'),
      eb.selectFrom('login_failures').select('locked_until').where('scope', '=', 'device').whereRef('subject', '=', 'logins.device_id').as('device_locked_until'),
      eb.selectFrom('login_failures').select('failures').where('scope', '=', 'account').whereRef('subject', '=', 'logins.account_id').as('account_failures'),
      eb.selectFrom('login_failures').select('failures').where('scope', '=', 'device').whereRef('subject', '=', 'logins.device_id').as('device_failures'),
      eb.selectFrom('cloud_accounts').select('password_hash').whereRef('cloud_accounts.account_id', '=', 'logins.account_id').as('password_hash'),
      answer(eb),
    ])
    .where('logins.login_id', '=', v.loginId),
)

/** Moves a login from one state to another if it is still in `from` (and unexpired); undefined otherwise. */
export async function transitionLogin(db: Db, loginId: string, from: LoginStateColumn, to: LoginStateColumn, now: Date): Promise<LoginRow | undefined> {
  return TRANSITION_LOGIN.first(db, { loginId, from, to, now })
}
const TRANSITION_LOGIN = queryTemplate('account-management.transitionLogin', (db: Db, v: { loginId: string; from: LoginStateColumn; to: LoginStateColumn; now: Date }) =>
  db.updateTable('logins').set({ state: v.to, updated_at: v.now }).where('login_id', '=', v.loginId).where('state', '=', v.from).where('expires_at', '>', v.now).returningAll(),
)

/**
 * Moves the device's verified, unexpired login of its current rental to redeemed and stores its
 * token, in one statement (the token takes the login's device, account and assignment); undefined
 * when the login did not qualify.
 */
export async function redeemLoginForToken(db: Db, deviceId: string, loginId: string, token: { tokenHash: string; expiresAt: Date }, now: Date): Promise<LoginTokenRow | undefined> {
  return REDEEM_LOGIN_FOR_TOKEN.first(db, { deviceId, loginId, tokenHash: token.tokenHash, expiresAt: token.expiresAt, now })
}
/** The redemption's statement (exported for the bench's measure of making a statement: bench/statement-building.ts). */
export const redeemLoginStatement = (db: Db, v: { deviceId: string; loginId: string; tokenHash: string; expiresAt: Date; now: Date }) =>
  db
    .with('moved', (qc) =>
      qc
        .updateTable('logins')
        .set({ state: 'redeemed', updated_at: v.now })
        .where('login_id', '=', v.loginId)
        .where('device_id', '=', v.deviceId)
        .where('state', '=', 'verified')
        .where('expires_at', '>', v.now)
        .where(startedUnderCurrentAssignment)
        .returningAll(),
    )
    .insertInto('login_tokens')
    .columns(['token_hash', 'login_id', 'device_id', 'account_id', 'assignment_id', 'expires_at', 'consumed_at', 'ended_at'])
    .expression((eb) =>
      eb
        .selectFrom('moved')
        .select([
          sql<string>`${v.tokenHash}::text`.as('token_hash'),
          'login_id',
          'device_id',
          'account_id',
          'assignment_id',
          sql<Date>`${v.expiresAt}::timestamptz`.as('expires_at'),
          sql<null>`null::timestamptz`.as('consumed_at'),
          sql<null>`null::timestamptz`.as('ended_at'),
        ]),
    )
    .returningAll()
const REDEEM_LOGIN_FOR_TOKEN = queryTemplate('account-management.redeemLoginForToken', redeemLoginStatement)

/**
 * Consumes an unconsumed, unended, unexpired token of that device, returning it with the app
 * account its cloud account is bound to (null when none); undefined when it does not qualify.
 */
export async function consumeLoginToken(db: Db, tokenHash: string, deviceId: string, now: Date): Promise<(LoginTokenRow & { app_account_id: string | null }) | undefined> {
  return CONSUME_LOGIN_TOKEN.first(db, { tokenHash, deviceId, now })
}
const CONSUME_LOGIN_TOKEN = queryTemplate('account-management.consumeLoginToken', (db: Db, v: { tokenHash: string; deviceId: string; now: Date }) =>
  db
    .updateTable('login_tokens')
    .set({ consumed_at: v.now })
    .where('token_hash', '=', v.tokenHash)
    .where('device_id', '=', v.deviceId)
    .where('consumed_at', 'is', null)
    .where('ended_at', 'is', null)
    .where('expires_at', '>', v.now)
    .returningAll()
    .returning((eb) =>
      eb
        .selectFrom('app_account_bindings')
        .select('app_account_bindings.app_account_id')
        .whereRef('app_account_bindings.account_id', '=', 'login_tokens.account_id')
        .as('app_account_id'),
    ),
)

export async function findLoginToken(db: Db, tokenHash: string): Promise<LoginTokenRow | undefined> {
  return db.selectFrom('login_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
}

export async function findLoginFailures(db: Db, scope: ThrottleScope, subject: string) {
  return db.selectFrom('login_failures').selectAll().where('scope', '=', scope).where('subject', '=', subject).executeTakeFirst()
}

/** Counts a failure; failures older than the window start a new count. Locks at `maxFailures`. */
export async function recordLoginFailure(db: Db, scope: ThrottleScope, subject: string, now: Date, windowMs: number, maxFailures: number): Promise<void> {
  const windowStart = new Date(now.getTime() - windowMs)
  const lockUntil = new Date(now.getTime() + windowMs)
  await db
    .insertInto('login_failures')
    .values({ scope, subject, failures: 1, first_failure_at: now, locked_until: maxFailures <= 1 ? lockUntil : null })
    .onConflict((oc) =>
      oc.columns(['scope', 'subject']).doUpdateSet({
        failures: sql`case when login_failures.first_failure_at < ${windowStart} then 1 else login_failures.failures + 1 end`,
        first_failure_at: sql`case when login_failures.first_failure_at < ${windowStart} then ${now} else login_failures.first_failure_at end`,
        locked_until: sql`case when (case when login_failures.first_failure_at < ${windowStart} then 1 else login_failures.failures + 1 end) >= ${maxFailures} then ${lockUntil}::timestamptz else login_failures.locked_until end`,
      }),
    )
    .execute()
}

/** Forgets the failures of every subject given, in one statement. */
export async function clearLoginFailures(db: Db, subjects: readonly (readonly [scope: ThrottleScope, subject: string])[]): Promise<void> {
  if (subjects.length === 0) return
  await db
    .deleteFrom('login_failures')
    .where((eb) => eb.or(subjects.map(([scope, subject]) => eb.and([eb('scope', '=', scope), eb('subject', '=', subject)]))))
    .execute()
}

export async function findAppAccountBinding(db: Db, accountId: string): Promise<AppAccountBindingRow | undefined> {
  return db.selectFrom('app_account_bindings').selectAll().where('account_id', '=', accountId).executeTakeFirst()
}

/** Binds unless the account already has a binding (first wins); returns the binding in force. */
export async function insertAppAccountBinding(db: Db, accountId: string, appAccountId: string): Promise<AppAccountBindingRow | undefined> {
  const inserted = await db
    .insertInto('app_account_bindings')
    .values({ account_id: accountId, app_account_id: appAccountId })
    .onConflict((oc) => oc.column('account_id').doNothing())
    .returningAll()
    .executeTakeFirst()
  return inserted ?? findAppAccountBinding(db, accountId)
}

export type PaymentBindingRow = Selectable<PaymentBindingsTable>

export async function insertPaymentBinding(
  db: Db,
  binding: { bindingId: string; accountId: string; platformId: string; payerRef: string; sealedPayer: Uint8Array; maskedPayer: string },
): Promise<PaymentBindingRow | undefined> {
  return db
    .insertInto('payment_bindings')
    .values({
      binding_id: binding.bindingId,
      account_id: binding.accountId,
      platform_id: binding.platformId,
      payer_ref: binding.payerRef,
      sealed_payer: binding.sealedPayer,
      masked_payer: binding.maskedPayer,
    })
    .onConflict((oc) => oc.columns(['account_id', 'platform_id', 'payer_ref']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function findPaymentBinding(db: Db, accountId: string, bindingId: string): Promise<PaymentBindingRow | undefined> {
  return db.selectFrom('payment_bindings').selectAll().where('account_id', '=', accountId).where('binding_id', '=', bindingId).executeTakeFirst()
}

/**
 * The account a device is assigned to and that account's binding (the one named, or the default
 * when none is), in one statement: undefined when the device is not assigned; `binding` undefined
 * when there is no such binding.
 */
export async function findDeviceBinding(
  db: Db,
  deviceId: string,
  bindingId: string | undefined,
): Promise<{ accountId: string; binding: PaymentBindingRow | undefined } | undefined> {
  const row = bindingId === undefined ? await FIND_DEVICE_DEFAULT_BINDING.first(db, { deviceId }) : await FIND_DEVICE_BINDING.first(db, { deviceId, bindingId })
  if (!row) return undefined
  const { assigned_account_id, ...binding } = row
  return { accountId: assigned_account_id, binding: binding.binding_id === null ? undefined : (binding as PaymentBindingRow) }
}
/** The device's assignment and its account's binding: the default one (`bindingId` absent) or the one named. */
const deviceBinding = (db: Db, deviceId: string, bindingId?: string) =>
  db
    .selectFrom('instance_assignments')
    .leftJoin('payment_bindings', (join) => {
      const sameAccount = join.onRef('payment_bindings.account_id', '=', 'instance_assignments.account_id')
      return bindingId === undefined ? sameAccount.on('payment_bindings.is_default', '=', true) : sameAccount.on('payment_bindings.binding_id', '=', bindingId)
    })
    .selectAll('payment_bindings')
    .select('instance_assignments.account_id as assigned_account_id')
    .where('instance_assignments.device_id', '=', deviceId)
const FIND_DEVICE_DEFAULT_BINDING = queryTemplate('account-management.findDeviceDefaultBinding', (db: Db, v: { deviceId: string }) => deviceBinding(db, v.deviceId))
const FIND_DEVICE_BINDING = queryTemplate('account-management.findDeviceBinding', (db: Db, v: { deviceId: string; bindingId: string }) =>
  deviceBinding(db, v.deviceId, v.bindingId),
)

/** The account a device is assigned to and up to `limit` of its enrolled terminals in enrolment order, in one statement; undefined when not assigned. */
export async function findTerminalsOfDevice(db: Db, deviceId: string, limit: number): Promise<{ accountId: string; terminals: AccountTerminalRow[] } | undefined> {
  const rows = await FIND_TERMINALS_OF_DEVICE.rows(db, { deviceId, limit })
  if (rows.length === 0) return undefined
  const terminals = rows.filter((row) => row.terminal_id !== null).map(({ assigned_account_id: _, ...terminal }) => terminal as AccountTerminalRow)
  return { accountId: rows[0]!.assigned_account_id, terminals }
}
const FIND_TERMINALS_OF_DEVICE = queryTemplate('account-management.findTerminalsOfDevice', (db: Db, v: { deviceId: string; limit: number }) =>
  db
    .selectFrom('instance_assignments')
    .leftJoin('account_terminals', 'account_terminals.account_id', 'instance_assignments.account_id')
    .selectAll('account_terminals')
    .select('instance_assignments.account_id as assigned_account_id')
    .where('instance_assignments.device_id', '=', v.deviceId)
    .orderBy('account_terminals.seq')
    .limit(v.limit),
)

export async function findDefaultPaymentBinding(db: Db, accountId: string): Promise<PaymentBindingRow | undefined> {
  return db.selectFrom('payment_bindings').selectAll().where('account_id', '=', accountId).where('is_default', '=', true).executeTakeFirst()
}

export async function countPaymentBindings(db: Db, accountId: string): Promise<number> {
  const row = await db
    .selectFrom('payment_bindings')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Makes one binding the account's default (clearing the previous default first). */
export async function setDefaultPaymentBinding(db: Db, accountId: string, bindingId: string): Promise<PaymentBindingRow | undefined> {
  await db.updateTable('payment_bindings').set({ is_default: false }).where('account_id', '=', accountId).where('is_default', '=', true).execute()
  return db.updateTable('payment_bindings').set({ is_default: true }).where('account_id', '=', accountId).where('binding_id', '=', bindingId).returningAll().executeTakeFirst()
}

export async function deletePaymentBinding(db: Db, accountId: string, bindingId: string): Promise<PaymentBindingRow | undefined> {
  return db.deleteFrom('payment_bindings').where('account_id', '=', accountId).where('binding_id', '=', bindingId).returningAll().executeTakeFirst()
}

export async function listPaymentBindings(db: Db, accountId: string, afterSeq: bigint | undefined, limit: number): Promise<PaymentBindingRow[]> {
  let query = db.selectFrom('payment_bindings').selectAll().where('account_id', '=', accountId).orderBy('seq').limit(limit)
  if (afterSeq !== undefined) query = query.where('seq', '>', afterSeq)
  return query.execute()
}

// Retention (runtime/retention.ts): one bounded statement each, finished rows only.

/**
 * Deletes up to `limit` login tokens that expired before `before`: used, ended (the tombstone of
 * a released assignment: kept as long as the token could be presented) or never used.
 */
export async function deleteLoginTokensExpiredBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('login_tokens')
    .where('token_hash', 'in', (eb) => eb.selectFrom('login_tokens').select('token_hash').where('expires_at', '<', before).limit(limit).forUpdate().skipLocked())
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/**
 * Deletes up to `limit` logins that expired before `before`, whatever their state (a pending or
 * verified one is live until it expires); one whose token is still kept stays with it.
 */
export async function deleteLoginsExpiredBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('logins')
    .where('login_id', 'in', (eb) =>
      eb
        .selectFrom('logins')
        .select('login_id')
        .where('expires_at', '<', before)
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('login_tokens').select('token_hash').whereRef('login_tokens.login_id', '=', 'logins.login_id'))))
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

/**
 * Deletes up to `limit` failure counts that no longer count: first failure before `before` (the
 * window) and no lock after it. Such a row means what no row means.
 */
export async function deleteLoginFailuresBefore(db: Db, before: Date, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('login_failures')
    .where((eb) =>
      eb(
        eb.refTuple('scope', 'subject'),
        'in',
        eb
          .selectFrom('login_failures')
          .select(['scope', 'subject'])
          .where('first_failure_at', '<', before)
          .where((w) => w.or([w('locked_until', 'is', null), w('locked_until', '<', before)]))
          .limit(limit)
          .forUpdate()
          .skipLocked()
          .$asTuple('scope', 'subject'),
      ),
    )
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}

export type AccountTerminalRow = Selectable<AccountTerminalsTable>

export async function findAccountTerminal(db: Db, terminalId: string): Promise<AccountTerminalRow | undefined> {
  return db.selectFrom('account_terminals').selectAll().where('terminal_id', '=', terminalId).executeTakeFirst()
}

export async function lockAccountTerminal(trx: Transaction<AccountDatabase>, terminalId: string): Promise<AccountTerminalRow | undefined> {
  return trx.selectFrom('account_terminals').selectAll().where('terminal_id', '=', terminalId).forUpdate().executeTakeFirst()
}

/** The account's row, locked until the transaction ends: enrolments in one account take turns (its terminal count holds). */
export async function lockCloudAccount(trx: Transaction<AccountDatabase>, accountId: string): Promise<CloudAccountRow | undefined> {
  return trx.selectFrom('cloud_accounts').selectAll().where('account_id', '=', accountId).forUpdate().executeTakeFirst()
}

export async function countAccountTerminals(db: Db, accountId: string): Promise<number> {
  const row = await db
    .selectFrom('account_terminals')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('account_id', '=', accountId)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Inserts an enrolment; undefined when the terminal is enrolled (anywhere) already. */
export async function insertAccountTerminal(
  db: Db,
  terminal: { terminalId: string; accountId: string; enrollmentId: string; displayName: string },
): Promise<AccountTerminalRow | undefined> {
  return db
    .insertInto('account_terminals')
    .values({ terminal_id: terminal.terminalId, account_id: terminal.accountId, enrollment_id: terminal.enrollmentId, display_name: terminal.displayName })
    .onConflict((oc) => oc.column('terminal_id').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function deleteAccountTerminal(db: Db, terminalId: string): Promise<AccountTerminalRow | undefined> {
  return db.deleteFrom('account_terminals').where('terminal_id', '=', terminalId).returningAll().executeTakeFirst()
}

/** The account's terminals in enrolment order, after `afterSeq`; `limit` rows at most. */
export async function listAccountTerminals(db: Db, accountId: string, afterSeq: bigint | undefined, limit: number): Promise<AccountTerminalRow[]> {
  let query = db.selectFrom('account_terminals').selectAll().where('account_id', '=', accountId).orderBy('seq').limit(limit)
  if (afterSeq !== undefined) query = query.where('seq', '>', afterSeq)
  return query.execute()
}

/** Moves last_seen_at to now when it is a minute old or more (one write a minute at most); the row when it moved. */
export async function touchAccountTerminal(db: Db, terminalId: string): Promise<AccountTerminalRow | undefined> {
  return db
    .updateTable('account_terminals')
    .set({ last_seen_at: sql`now()` })
    .where('terminal_id', '=', terminalId)
    .where('last_seen_at', '<', sql<Date>`now() - interval '1 minute'`)
    .returningAll()
    .executeTakeFirst()
}
