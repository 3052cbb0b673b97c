// AppService's calls to AccountManagement: a login token is only AccountManagement's to validate,
// and the app account a cloud account logs in as is bound there. The request ids derive from the
// caller's own, so a retried login replays AccountManagement's first answers.
import type { ValidateLoginTokenRequest, BindAppAccountRequest } from '../../gen/cloudpay/account/v1/account_management_service.ts'
import { unaryCall } from '../runtime/client.ts'
import { callPeer } from '../runtime/peer-calls.ts'
import type { Peers } from '../runtime/peers.ts'

/** The cloud account (and its bound app account, if any) a single-use login token was issued for. */
export function validateLoginToken(peers: Peers, request: ValidateLoginTokenRequest, signal: AbortSignal) {
  return callPeer('account-management', unaryCall(peers.get('account-management'), 'validateLoginToken', request, { signal }))
}

/** Binds a freshly created guest app account to the cloud account; the binding that wins comes back. */
export function bindAppAccount(peers: Peers, request: BindAppAccountRequest, signal: AbortSignal) {
  return callPeer('account-management', unaryCall(peers.get('account-management'), 'bindAppAccount', request, { signal }))
}
