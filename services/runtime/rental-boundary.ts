// The rental boundary, one rule for every service:
//
//   An instance caller sees and replays only what belongs to its device's CURRENT RENTAL; a
//   terminal only what belongs to its CURRENT ENROLMENT (or, through a channel, to the current
//   rental of the device the channel is open to).
//
// A device is released and rented again to someone else with the same instance certificate; a
// terminal is removed and enrolled again (perhaps in another account) with the same terminal
// certificate. Whatever an earlier rental or enrolment left (orders, logins, events, stored
// answers of its request ids) is, to the caller of now, as if it never existed: NOT_FOUND, absent
// from lists and streams, never replayed. The back office (operator) and the services still read
// everything. Each service applies the rule where it keeps the object, in a statement the call
// runs anyway (a join or a scalar subquery; no round trip added):
//   - PaymentManagement: orders submitted before `device_rentals.began_at` (GetOrder, ListOrders,
//     CancelOrder, PrepayOrder, PayThroughRelay, ClaimOrder, AuthorizeTerminal; SubmitOrder of an
//     app order placed before it).
//   - AccountManagement: logins of another assignment than the device's current one (GetLogin,
//     RedeemLogin, VerifyLogin).
//   - AppService: app orders and sessions of an ended assignment (`device_assignments`, ended at
//     AccountManagement's release time, EndDeviceSessions.end_time, however late the hand-off lands).
//   - InstanceEvents: device events tagged with another rental than the reader's
//     (`events.rental_floor`, placed by the subject's creation time when a service publishes);
//     a terminal's own events from before its enrolment; its channels closed before its latest
//     removal (ListChannels; TERMINAL_REMOVED's occur_time, on the terminal stream's row).
//   - PaymentPlatform: a removed terminal's offline credentials provisioned before the removal are
//     revoked (EndTerminalCredentials, the removal's hand-off) and no longer its own to list or
//     revoke (`ended_enrolments`).
//   - stored answers of an instance's request ids (idempotency.ts), through the `since` each
//     service registers here for its database; a terminal's removal forgets its EnrollTerminal
//     answers (terminals.ts), its other answers keep replaying (a RemoveTerminal retry must).
import type { Expression, ExpressionBuilder } from 'kysely'
import type { Identity } from './identity.ts'

/**
 * Where, in one service's tables, the caller's current rental (an instance) or enrolment (a
 * terminal) began: a scalar SQL expression, null while none is recorded (then nothing is of an
 * earlier one). Undefined for callers the rule does not bound (services, operators), or that
 * this service does not track. Its shape follows the caller's role alone and its only value is
 * the caller's id: the answers' insert is built once per role (query-template.ts).
 */
export type BoundarySince = (caller: Identity, eb: ExpressionBuilder<any, any>) => Expression<unknown> | undefined

const boundaries = new WeakMap<object, BoundarySince>()

/** A service's handlers register their boundary for the database view they run on (its idempotency store). */
export function registerRentalBoundary(db: object, since: BoundarySince): void {
  boundaries.set(db, since)
}

/** The boundary of `caller` in the service whose database view is `db`, if the rule bounds it there. */
export function boundaryOf(db: object, caller: Identity): ((eb: ExpressionBuilder<any, any>) => Expression<unknown>) | undefined {
  if (caller.role !== 'instance' && caller.role !== 'terminal') return undefined
  const since = boundaries.get(db)
  if (!since) return undefined
  return (eb) => since(caller, eb) ?? eb.val(null)
}

/** True for the callers whose reads the rule bounds: an instance and a terminal. */
export const isBounded = (caller: Identity): boolean => caller.role === 'instance' || caller.role === 'terminal'
