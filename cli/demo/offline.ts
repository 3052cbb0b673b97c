// The demo's offline payment (docs/design.md, "Offline payment codes sealed to the payee"): the
// phone provisions an offline credential while online (the allowance reserved at once), goes
// offline, reads the merchant counter's payee code, makes a payment code from what it stored
// (no network) and shows it as a QR; the counter opens and redeems it; a second merchant who
// got the picture cannot open it, and the plaintext forwarded to it is refused. Balances before
// and after, the offline reserve included; the rest goes back to the payer when the phone revokes.
import { randomBytes, randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { type ServiceError, status as Status } from '@grpc/grpc-js'
import { generateOfflineCode, OfflineCodeRefused, openPaymentCode, qrForTerminal } from '../../sdk/offline-code.ts'
import { payeeSdk } from '../../sdk/payee.ts'
import { terminalSdk } from '../../sdk/terminal.ts'
import { unaryCall } from '../../services/runtime/client.ts'
import { statusDetailsOf } from '../../services/runtime/errors.ts'
import type { Identity } from '../../services/runtime/identity.ts'
import { type MeshClients, OPERATOR } from './steps.ts'

const PLATFORM = 'alphapay'
const RESERVE_ACCOUNT = 'OFFLINERESERVEUSD'
const MERCHANTS = { shop: 'SHOPALPHA0001', cafe: 'CAFEALPHA0001' } as const

type Balances = Record<'payer' | 'reserve' | 'shop' | 'cafe', string>

export interface OfflineDemo {
  credentialId: string
  allowance: { currencyCode: string; amountMinor: string }
  payee: string
  paymentCode: string
  redemptionId: string
  amount: { currencyCode: string; amountMinor: string }
  /** The second merchant, with the same picture. */
  refused: { payee: string; couldOpen: boolean; forwardedPlaintext: string }
  remainingAfterRedemption: string
  balances: { before: Balances; provisioned: Balances; redeemed: Balances; revoked: Balances }
}

export async function runOfflineDemo(
  clients: MeshClients,
  say: (line: string) => void,
  person: { readonly phoneId: string; readonly payerAccount: string; readonly paymentPassword: string; readonly caFile: string },
): Promise<OfflineDemo> {
  const suffix = randomBytes(3).toString('hex')
  const ops = await clients.client('payment-platform', OPERATOR)
  const balanceOf = async (account: string): Promise<string> => {
    try {
      return (await unaryCall(ops, 'getAccountBalance', { platformId: PLATFORM, account })).account!.balance!.amountMinor.toString()
    } catch (error) {
      if ((error as { code?: Status }).code === Status.NOT_FOUND) return '0' // the reserve opens with the first credential
      throw error
    }
  }
  const balances = async (): Promise<Balances> => ({
    payer: await balanceOf(person.payerAccount),
    reserve: await balanceOf(RESERVE_ACCOUNT),
    shop: await balanceOf(MERCHANTS.shop),
    cafe: await balanceOf(MERCHANTS.cafe),
  })
  await unaryCall(ops, 'createMerchantAccount', {
    requestId: randomUUID(),
    platformId: PLATFORM,
    merchantId: 'demo-cafe',
    collectionAccount: MERCHANTS.cafe,
    currencyCode: 'USD',
  }).catch((error: { code?: number }) => {
    if (error.code !== Status.ALREADY_EXISTS) throw error
  })
  /** A merchant's counter, holding a payee of its collection account, with a published key. */
  const counter = async (name: keyof typeof MERCHANTS) => {
    const holder: Identity = { role: 'terminal', id: `counter-${name}-${suffix}` }
    const payeeId = `${name}-${suffix}`
    await unaryCall(ops, 'registerPayee', { requestId: randomUUID(), platformId: PLATFORM, payeeId, collectionAccount: MERCHANTS[name], holder: `terminal/${holder.id}` })
    const payee = payeeSdk(clients, holder, PLATFORM, payeeId)
    await payee.publishKey()
    return payee
  }
  const shop = await counter('shop')
  const cafe = await counter('cafe')
  const phone = terminalSdk(clients, person.phoneId)
  try {
    const before = await balances()
    say(`── 12. Offline payment. Online beforehand, the phone provisions an offline credential with the payment password: 20.00 USD reserved at once, at most 15.00 a code.`)
    const allowance = { currencyCode: 'USD', amountMinor: 2_000n }
    let credential = await phone.provisionOffline(PLATFORM, person.payerAccount, person.paymentPassword, { allowance, perCodeCapMinor: 1_500n })
    const provisioned = await balances()
    say(`   Credential ${credential.credentialId}: payer ${before.payer} -> ${provisioned.payer}, offline reserve ${before.reserve} -> ${provisioned.reserve} (minor units).`)
    const payeeCode = await shop.payeeCode()
    say(`── 13. The phone goes offline. The shop's counter shows its payee code (signed by ${PLATFORM}); the phone reads it:`)
    say(`   ${payeeCode.slice(0, 64)}…`)
    // From here to the redemption the phone uses nothing but what it stored and the mesh CA.
    const amount = { currencyCode: 'USD', amountMinor: 1_200n }
    const generated = await generateOfflineCode(credential, payeeCode, amount, { caCertificates: await readFile(person.caFile, 'utf8') })
    credential = generated.credential
    say(`── 14. The phone makes a 12.00 USD code (counter ${generated.counter}, MAC with its credential secret, sealed to the shop's key) and shows it:`)
    for (const line of (await qrForTerminal(generated.text)).split('\n')) say(`   ${line}`)
    const redemption = await shop.redeem(generated.text, amount)
    const redeemed = await balances()
    say(
      `── 15. The shop's counter opens it (only it can) and redeems it: ${redemption.redemptionId}, reserve ${provisioned.reserve} -> ${redeemed.reserve}, shop ${provisioned.shop} -> ${redeemed.shop}.`,
    )

    say(`── 16. The café got the same picture. It cannot open it; the shop's opened plaintext forwarded to it is refused too.`)
    let couldOpen = true
    try {
      await openPaymentCode(generated.text, { platformId: PLATFORM, payeeId: `cafe-${suffix}`, keys: cafe.keys })
    } catch (error) {
      if (!(error instanceof OfflineCodeRefused)) throw error
      couldOpen = false
    }
    const opened = Buffer.from(await openPaymentCode(generated.text, { platformId: PLATFORM, payeeId: `shop-${suffix}`, keys: shop.keys }))
    const cafeClient = await clients.client('payment-platform', { role: 'terminal', id: `counter-cafe-${suffix}` })
    let forwardedPlaintext = 'accepted'
    try {
      await unaryCall(cafeClient, 'redeemOfflineCode', { requestId: randomUUID(), platformId: PLATFORM, payeeId: `cafe-${suffix}`, code: opened, amount })
    } catch (error) {
      const refusal = error as ServiceError
      forwardedPlaintext = `${Status[refusal.code]} ${statusDetailsOf(refusal.metadata).reason ?? ''}`.trim()
    }
    if (couldOpen || forwardedPlaintext === 'accepted') throw new Error('the café could use a code sealed to the shop')
    say(`   The café: cannot open it; forwarded plaintext: ${forwardedPlaintext}. Nothing moved.`)

    say(`── 17. Back online, the phone lists its redemptions and revokes the credential: the rest of the reserve goes back.`)
    const listed = await phone.listOfflineRedemptions(PLATFORM, credential.credentialId)
    await phone.revokeOffline(PLATFORM, credential.credentialId)
    const revoked = await balances()
    say(
      `   ${listed.redemptions.length} redemption(s), ${listed.credential!.remaining!.amountMinor} left; payer ${redeemed.payer} -> ${revoked.payer}, reserve ${redeemed.reserve} -> ${revoked.reserve}.`,
    )
    return {
      credentialId: credential.credentialId,
      allowance: { currencyCode: allowance.currencyCode, amountMinor: allowance.amountMinor.toString() },
      payee: `shop-${suffix}`,
      paymentCode: generated.text,
      redemptionId: redemption.redemptionId,
      amount: { currencyCode: amount.currencyCode, amountMinor: redemption.amount!.amountMinor.toString() },
      refused: { payee: `cafe-${suffix}`, couldOpen, forwardedPlaintext },
      remainingAfterRedemption: listed.credential!.remaining!.amountMinor.toString(),
      balances: { before, provisioned, redeemed, revoked },
    }
  } finally {
    phone.close()
  }
}
