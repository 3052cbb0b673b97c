// `npm run cloudpay -- seal ...`: the terminal's sealing step for trying the relay by hand. Reads a
// GetSealingKeys answer as grpcurl prints it (JSON) on stdin, verifies it against the mesh CA, seals
// the payment password (from CLOUDPAY_PAYMENT_PASSWORD, never the command line, which other users
// of the machine can read) for the named transaction, and prints a PayThroughRelay request as JSON
// for `grpcurl -d @`.
import { randomUUID } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { GetSealingKeysResponse, PayThroughRelayRequest } from '../gen/cloudpay/payment/v1/payment_management_service.ts'
import { sealForTransaction } from '../sdk/terminal.ts'

export const SEAL_USAGE =
  'npm run cloudpay -- seal --device <id> --order <id> --platform <id> --serial <serial> --amount <minor units> --currency <ISO 4217> [--ca <mesh CA file>]\n' +
  '       (GetSealingKeys JSON on stdin, the payment password in CLOUDPAY_PAYMENT_PASSWORD; prints a PayThroughRelay request)\n'

const readStdin = async (): Promise<string> => {
  let text = ''
  for await (const chunk of process.stdin) text += chunk
  return text
}

/** Exit code and what to print on stderr, or the request on stdout. */
export async function seal(args: string[], defaultCaFile: () => Promise<string>): Promise<number> {
  const fail = (message: string): number => (process.stderr.write(`${message}\n`), 2)
  let values: Record<string, string | undefined>
  try {
    values = parseArgs({
      args,
      options: { device: { type: 'string' }, order: { type: 'string' }, platform: { type: 'string' }, serial: { type: 'string' }, amount: { type: 'string' }, currency: { type: 'string' }, ca: { type: 'string' } },
    }).values as Record<string, string | undefined>
  } catch (error) {
    return fail(`${(error as Error).message}\nusage: ${SEAL_USAGE}`)
  }
  const missing = ['device', 'order', 'platform', 'serial', 'amount', 'currency'].filter((name) => !values[name])
  if (missing.length > 0) return fail(`missing --${missing.join(', --')}\nusage: ${SEAL_USAGE}`)
  if (!/^[1-9][0-9]{0,12}$/.test(values.amount!)) return fail('--amount must be a positive whole number of minor units (at most 10^13 - 1)')
  const paymentPassword = process.env.CLOUDPAY_PAYMENT_PASSWORD
  if (!paymentPassword) return fail('CLOUDPAY_PAYMENT_PASSWORD must hold the payment password')
  let published: GetSealingKeysResponse
  try {
    published = GetSealingKeysResponse.fromJSON(JSON.parse(await readStdin()))
  } catch {
    return fail('stdin must be the JSON of a GetSealingKeys answer (grpcurl ... PaymentManagementService/GetSealingKeys | ...)')
  }
  const caFile = values.ca ?? (await defaultCaFile())
  try {
    const target = { serialNumber: values.serial!, amountMinor: BigInt(values.amount!), currencyCode: values.currency!, platformId: values.platform! }
    const { keyId, sealed } = await sealForTransaction(published, target, paymentPassword, await readFile(caFile, 'utf8'))
    const request = PayThroughRelayRequest.toJSON({ requestId: randomUUID(), deviceId: values.device!, orderId: values.order!, platformId: target.platformId, serialNumber: target.serialNumber, keyId, sealed })
    process.stdout.write(`${JSON.stringify(request)}\n`)
    return 0
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`)
    return 1
  }
}
