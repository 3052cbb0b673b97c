// What a database failure says about the call: a value the database refused (SQLSTATE class 22,
// data exception) is the request's fault that validation missed; a lost or refused connection is
// the database being unavailable. Both pg and PGlite put the SQLSTATE in `code`.

export type DatabaseFault = 'invalid-value' | 'unavailable'

/** 08: connection exception; 53: insufficient resources; 57P01-57P03: shutdown, crash, not yet accepting. */
const UNAVAILABLE_STATES = /^(08...|53...|57P0[123])$/
const UNAVAILABLE_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'])
/** pg's own wording when the server goes away mid-query or a pool cannot connect in time. */
const UNAVAILABLE_MESSAGES = /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed/i

export function databaseFaultOf(error: unknown): DatabaseFault | undefined {
  // Drivers and query builders sometimes wrap the original error: look a few causes deep.
  for (let depth = 0, current = error; depth < 4 && current instanceof Error; depth++, current = current.cause) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string') {
      if (/^22...$/.test(code)) return 'invalid-value'
      if (UNAVAILABLE_STATES.test(code) || UNAVAILABLE_SOCKET_CODES.has(code)) return 'unavailable'
    }
    if (UNAVAILABLE_MESSAGES.test(current.message)) return 'unavailable'
  }
  return undefined
}
