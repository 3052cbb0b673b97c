// Run as a child process: makes one offline payment code with every way out of the process cut
// (sockets, DNS, HTTP/2 throw) and no client of any service, from what a terminal stored while
// online. Input (stdin, JSON): credential, payee code, amount, mesh CA; output (stdout): the code.
import dns from 'node:dns'
import http2 from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'

const cut = (what: string) => () => {
  throw new Error(`offline generation tried the network (${what})`)
}
net.Socket.prototype.connect = cut('socket') as never
net.connect = net.createConnection = cut('net.connect') as never
tls.connect = cut('tls.connect') as never
http2.connect = cut('http2.connect') as never
dns.lookup = cut('dns.lookup') as never

const { generateOfflineCode } = await import('../../sdk/offline-code.ts')
let input = ''
for await (const chunk of process.stdin) input += chunk
const given = JSON.parse(input)
const b = (value: string) => Buffer.from(value, 'base64')
const credential = {
  ...given.credential,
  secret: b(given.credential.secret),
  perCodeCapMinor: BigInt(given.credential.perCodeCapMinor),
  nextCounter: BigInt(given.credential.nextCounter),
  notBefore: new Date(given.credential.notBefore),
  notAfter: new Date(given.credential.notAfter),
  certificateChain: given.credential.certificateChain.map(b),
}
const generated = await generateOfflineCode(
  credential,
  given.payeeCode,
  { currencyCode: given.currencyCode, amountMinor: BigInt(given.amountMinor) },
  { caCertificates: given.meshCa },
)
process.stdout.write(generated.text)
