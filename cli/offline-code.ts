// `npm run cloudpay -- offline-code ...`: offline payment codes by hand (docs/design.md), against a
// running mesh, each party with its development certificate. What a terminal or a payee keeps
// (the credential with its secret, the payee's private keys) goes to files under
// <CLOUDPAY_HOME>/offline/ readable by the owner only: the stand-in for the device's own storage.
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { type Config, loadConfig } from '../services/runtime/config.ts'
import { ID_PATTERN, type Identity } from '../services/runtime/identity.ts'
import { sealingSuite } from '../services/runtime/sealed-box.ts'
import { addressBook } from '../services/runtime/service-host.ts'
import { startTelemetry } from '../services/runtime/telemetry.ts'
import { certificateFiles } from '../services/runtime/tls.ts'
import { generateOfflineCode, type PayeeKeyPair, qrForTerminal, qrPng, type StoredCredential } from '../sdk/offline-code.ts'
import { payeeSdk } from '../sdk/payee.ts'
import { terminalSdk } from '../sdk/terminal.ts'
import { demoClients } from './demo/clients.ts'

export const OFFLINE_USAGE = `       npm run cloudpay -- offline-code payee <platform> <payee-id> <terminal/<id>|service/<name>>
           (the payee's holder) make a key pair, publish it, print the payee code and its QR
       npm run cloudpay -- offline-code provision <terminal-id> <platform> <payer-account> <allowance-minor> <cap-minor> [USD]
           (online) the payment password from CLOUDPAY_PAYMENT_PASSWORD or stdin; stores the credential
       npm run cloudpay -- offline-code generate <terminal-id> <payee-code> <amount-minor> [--png <file>]
           (offline: no connection at all) print the payment code and its QR
       npm run cloudpay -- offline-code redeem <platform> <payee-id> <payment-code> <amount-minor>
           (the payee's holder) open the code with its keys and redeem it
       npm run cloudpay -- offline-code list <terminal-id>
           (online) the credential's redemptions and what is left of its allowance
`

const HOLDER = /^(terminal|service)\/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$/
const MINOR = /^[1-9][0-9]{0,11}$/

class UsageError extends Error {}

const credentialFile = (config: Config, terminalId: string) => join(config.home, 'offline', 'terminals', `${terminalId}.json`)
const payeeFile = (config: Config, platformId: string, payeeId: string) => join(config.home, 'offline', 'payees', `${platformId}.${payeeId}.json`)

async function writePrivate(file: string, value: unknown): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 })
  // Bytes as base64 (a Buffer reaches the replacer already as {type: 'Buffer', data}), bigints as "<n>n".
  const replacer = (_: string, v: unknown): unknown => {
    if (typeof v === 'bigint') return `${v}n`
    if (v instanceof Uint8Array) return { b64: Buffer.from(v).toString('base64') }
    if (v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' && Array.isArray((v as { data?: unknown }).data)) {
      return { b64: Buffer.from((v as { data: number[] }).data).toString('base64') }
    }
    return v
  }
  await writeFile(file, JSON.stringify(value, replacer, 2), { mode: 0o600 })
  await chmod(file, 0o600)
}

async function readPrivate<T>(file: string, what: string): Promise<T> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    throw new UsageError(`no ${what} at ${file}`)
  }
  return JSON.parse(text, (_, v: unknown) => {
    if (typeof v === 'string' && /^-?[0-9]+n$/.test(v)) return BigInt(v.slice(0, -1))
    if (v && typeof v === 'object' && 'b64' in v) return Buffer.from((v as { b64: string }).b64, 'base64')
    return v
  }) as T
}

/** A credential as read back (its dates were stored as text). */
function credentialOf(stored: StoredCredential): StoredCredential {
  return { ...stored, notBefore: new Date(stored.notBefore), notAfter: new Date(stored.notAfter) }
}

const id = (value: string | undefined, what: string): string => {
  if (!value || !ID_PATTERN.test(value)) throw new UsageError(`${what} must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit`)
  return value
}
const minor = (value: string | undefined, what: string): bigint => {
  if (!value || !MINOR.test(value)) throw new UsageError(`${what} must be a whole number of minor units (1-999999999999)`)
  return BigInt(value)
}

async function paymentPassword(): Promise<string> {
  if (process.env.CLOUDPAY_PAYMENT_PASSWORD) return process.env.CLOUDPAY_PAYMENT_PASSWORD
  let input = ''
  for await (const chunk of process.stdin) input += chunk
  const line = input.split('\n')[0]?.trim()
  if (!line) throw new UsageError('give the payment password in CLOUDPAY_PAYMENT_PASSWORD or on stdin')
  return line
}

/** Runs one offline-code command; returns the exit code. */
export async function offlineCode(args: string[], out: (text: string) => void): Promise<number> {
  const [command, ...rest] = args
  const config = loadConfig()
  // Generation makes no connection: it never builds a client.
  if (command === 'generate') {
    const [terminalId, payeeCode, amount] = rest
    const pngAt = rest.indexOf('--png')
    const stored = credentialOf(await readPrivate(credentialFile(config, id(terminalId, 'terminal-id')), 'offline credential (provision one first)'))
    if (!payeeCode) throw new UsageError('give the payee code the payee shows')
    const ca = await readFile((await certificateFiles(config, { role: 'terminal', id: terminalId! })).caFile, 'utf8')
    const generated = await generateOfflineCode(stored, payeeCode, { currencyCode: stored.currencyCode, amountMinor: minor(amount, 'amount-minor') }, { caCertificates: ca })
    // The counter is stored before the code is shown: a code never reuses one.
    await writePrivate(credentialFile(config, terminalId!), generated.credential)
    out(`${await qrForTerminal(generated.text)}\n${generated.text}\n`)
    if (pngAt >= 0) {
      if (!rest[pngAt + 1]) throw new UsageError('--png needs a file name')
      await qrPng(generated.text, rest[pngAt + 1]!)
      out(`QR written to ${rest[pngAt + 1]}\n`)
    }
    return 0
  }
  if (!['payee', 'provision', 'redeem', 'list'].includes(command ?? '')) throw new UsageError(`unknown offline-code command ${JSON.stringify((command ?? '').slice(0, 40))}`)
  const telemetry = startTelemetry({ spanFile: config.traceFile })
  const clients = demoClients(config, addressBook(config), telemetry)
  try {
    if (command === 'payee') {
      const [platformId, payeeId, holderText] = rest
      const holder = HOLDER.exec(holderText ?? '')
      if (!holder) throw new UsageError('the holder must be terminal/<id> or service/<name>')
      const identity: Identity = { role: holder[1] as 'terminal' | 'service', id: holder[2]! }
      const file = payeeFile(config, id(platformId, 'platform'), id(payeeId, 'payee-id'))
      const saved = await readPrivate<{ holder: string; keys: { keyId: string; privateKey: Buffer }[] }>(file, 'payee keys').catch(() => ({ holder: holderText!, keys: [] }))
      const keys: PayeeKeyPair[] = await Promise.all(saved.keys.map(async (k) => ({ keyId: k.keyId, privateKey: await sealingSuite.kem.deserializePrivateKey(k.privateKey) })))
      const payee = payeeSdk(clients, identity, platformId!, payeeId!, keys)
      const key = await payee.publishKey()
      const serialized = await Promise.all(payee.keys.map(async (k) => ({ keyId: k.keyId, privateKey: Buffer.from(await sealingSuite.kem.serializePrivateKey(k.privateKey)) })))
      await writePrivate(file, { holder: holderText, keys: serialized })
      const code = await payee.payeeCode()
      out(`${await qrForTerminal(code)}\n${code}\nkey ${key.keyId} accepted until ${key.notAfter!.toISOString()}; private keys in ${file}\n`)
      return 0
    }
    if (command === 'provision') {
      const [terminalId, platformId, payerAccount, allowance, cap, currency = 'USD'] = rest
      if (!payerAccount) throw new UsageError('give the payer account')
      // Every argument is checked before the password is asked for.
      const limits = { allowance: { currencyCode: currency, amountMinor: minor(allowance, 'allowance-minor') }, perCodeCapMinor: minor(cap, 'cap-minor') }
      const phone = terminalSdk(clients, id(terminalId, 'terminal-id'))
      try {
        const stored = await phone.provisionOffline(id(platformId, 'platform'), payerAccount, await paymentPassword(), limits)
        await writePrivate(credentialFile(config, terminalId!), stored)
        out(
          `credential ${stored.credentialId}: ${allowance} ${currency} reserved, at most ${cap} a code, until ${stored.notAfter.toISOString()}; stored in ${credentialFile(config, terminalId!)}\n`,
        )
      } finally {
        phone.close()
      }
      return 0
    }
    if (command === 'redeem') {
      const [platformId, payeeId, code, amount] = rest
      const file = payeeFile(config, id(platformId, 'platform'), id(payeeId, 'payee-id'))
      const saved = await readPrivate<{ holder: string; keys: { keyId: string; privateKey: Buffer }[] }>(file, 'payee keys (run offline-code payee first)')
      const holder = HOLDER.exec(saved.holder)!
      const keys = await Promise.all(saved.keys.map(async (k) => ({ keyId: k.keyId, privateKey: await sealingSuite.kem.deserializePrivateKey(k.privateKey) })))
      const payee = payeeSdk(clients, { role: holder[1] as 'terminal' | 'service', id: holder[2]! }, platformId!, payeeId!, keys)
      if (!code) throw new UsageError('give the payment code the payer shows')
      const redemption = await payee.redeem(code, { currencyCode: 'USD', amountMinor: minor(amount, 'amount-minor') })
      out(`redeemed ${redemption.redemptionId}: ${redemption.amount!.amountMinor} ${redemption.amount!.currencyCode}, counter ${redemption.counter}\n`)
      return 0
    }
    const [terminalId] = rest
    const stored = credentialOf(await readPrivate(credentialFile(config, id(terminalId, 'terminal-id')), 'offline credential'))
    const phone = terminalSdk(clients, terminalId!)
    try {
      const listed = await phone.listOfflineRedemptions(stored.platformId, stored.credentialId)
      for (const r of listed.redemptions)
        out(`${r.redeemTime!.toISOString()}  ${r.redemptionId}  counter ${r.counter}  ${r.payeeId}  ${r.amount!.amountMinor} ${r.amount!.currencyCode}\n`)
      out(`left: ${listed.credential!.remaining!.amountMinor} ${listed.credential!.remaining!.currencyCode}\n`)
    } finally {
      phone.close()
    }
    return 0
  } finally {
    clients.close()
    await telemetry.shutdown()
  }
}

export { UsageError as OfflineUsageError }
