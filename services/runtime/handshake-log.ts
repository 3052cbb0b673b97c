// TLS handshake failures (no client certificate, an unknown CA, an expired certificate...) are
// invisible to handlers and interceptors, and the client often sees only "closed connection":
// log each reason with the peer address, at most once per window per reason, with a count of
// those suppressed meanwhile.
import type { Server } from '@grpc/grpc-js'
import type { EventEmitter } from 'node:events'
import type { Logger } from './logger.ts'

const WINDOW_MS = 10_000

export function logHandshakeFailures(server: Server, log: Logger): void {
  const internals = server as unknown as { http2Servers?: Map<EventEmitter, unknown> }
  if (!internals.http2Servers) throw new Error('grpc-js internals changed: no http2Servers to watch handshakes on')
  const windows = new Map<string, { until: number; suppressed: number }>()
  const onFailure = (error: NodeJS.ErrnoException & { reason?: string }, socket: { remoteAddress?: string }) => {
    const reason = error.code ?? error.reason ?? error.message
    const now = Date.now()
    const window = windows.get(reason)
    if (window && now < window.until) {
      window.suppressed++
      return
    }
    windows.set(reason, { until: now + WINDOW_MS, suppressed: 0 })
    log.warn({ reason, detail: error.message.slice(0, 200), peer: socket.remoteAddress, suppressed_before: window?.suppressed ?? 0 }, 'TLS handshake failed')
  }
  for (const http2Server of internals.http2Servers.keys()) http2Server.on('tlsClientError', onFailure)
}
