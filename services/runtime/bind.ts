// Binding a server's port, the same way for the service port and the probe port.
import { createServer } from 'node:net'
import type { Server, ServerCredentials } from '@grpc/grpc-js'
import type { Logger } from './logger.ts'

/** How long a fixed port that is taken is waited for before the start fails. */
const BIND_PATIENCE_MS = 10_000

/**
 * Binds, waiting a while for a fixed port that is in use: a replica restarted in place can find its
 * predecessor still closing (the default ports lie below the ephemeral range, config.ts, so no
 * closed outgoing connection holds them; a port configured inside it can be held for 60 s). grpc-js keeps a failed bind and answers
 * the same error to a second try, so the port is tried with a plain listener first, then bound.
 */
export async function bindPatiently(server: Server, address: string, credentials: ServerCredentials, log?: Logger): Promise<number> {
  await untilFree(address, log)
  return new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (error, bound) => (error ? reject(error) : resolve(bound))))
}

async function untilFree(address: string, log: Logger | undefined): Promise<void> {
  const colon = address.lastIndexOf(':')
  const port = Number(address.slice(colon + 1))
  if (colon < 0 || !Number.isInteger(port) || port === 0) return // any port will do, or not an address this can try
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1')
  const until = Date.now() + BIND_PATIENCE_MS
  for (let attempt = 1; ; attempt++) {
    const error = await tryListen(host, port)
    if (!error) return
    // Not in use (no such address, no permission) or waited long enough: grpc-js's bind reports it as it is.
    if (error.code !== 'EADDRINUSE' || Date.now() >= until) return
    if (attempt === 1) log?.warn({ address }, 'address in use; waiting up to 10 s for it to be free')
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}

function tryListen(host: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error))
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(undefined)))
  })
}
