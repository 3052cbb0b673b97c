// Who may call each PaymentPlatformService RPC (default deny: every RPC is listed).
import { PaymentPlatformServiceService } from '../../gen/cloudpay/platform/v1/payment_platform_service.ts'
import { allow, allowServices, ANY_MESH_IDENTITY, either, OBJECT_RULES, type Rules, scoped } from '../runtime/authz.ts'

export const rules: Rules<typeof PaymentPlatformServiceService> = {
  // Operators are the platform's back office here: they open accounts and read; they never move money.
  createPayerAccount: scoped(allow('operator'), OBJECT_RULES.boundedIssuance),
  createMerchantAccount: allow('operator'),
  getAccountBalance: allow('operator'),
  createPrepay: allowServices('payment-management'),
  pay: scoped(allow('terminal'), OBJECT_RULES.prepayTerminal),
  getTransaction: scoped(either(allowServices('payment-management'), allow('terminal', 'operator')), OBJECT_RULES.prepayTerminal),
  cancelTransaction: allowServices('payment-management'),
  refundTransaction: allowServices('payment-management'),
  listLedgerEntries: allow('operator'),
  // Public keys, signed: anyone in the mesh who seals to the platform (or relays for it) may read them.
  getSealingKeys: either(allowServices('payment-management'), allow('terminal', 'operator')),
  paySealed: scoped(allowServices('payment-management'), OBJECT_RULES.relayedTerminal),
  // Offline payment codes: the back office registers payees; a payee's holder (a counter: terminal;
  // a merchant server: service) publishes its keys and redeems; anyone may read a payee code.
  registerPayee: allow('operator'),
  publishPayeeKey: scoped(allow('terminal', 'service'), OBJECT_RULES.payeeHolder),
  getPayeeCode: ANY_MESH_IDENTITY,
  provisionOfflineCredential: scoped(allow('terminal'), OBJECT_RULES.offlineProvisioner),
  revokeOfflineCredential: scoped(allow('terminal', 'operator'), OBJECT_RULES.ownCredential),
  redeemOfflineCode: scoped(allow('terminal', 'service'), OBJECT_RULES.payeeHolder),
  listOfflineRedemptions: scoped(allow('terminal'), OBJECT_RULES.ownCredential),
  // The end of a removed terminal's enrolment, handed off by AccountManagement.
  endTerminalCredentials: allowServices('account-management'),
}
