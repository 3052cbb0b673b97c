// The one list of request fields that hold a secret (a password, an account number, a bearer
// token), and the one way to blank them: idempotency fingerprints, log lines and span attributes
// all go through withoutSecrets(), so no call site blanks a field by hand.

/** Secret-bearing fields by proto name; each is matched in snake_case and in ts-proto's camelCase. */
const SECRET_PROTO_NAMES = ['password', 'payment_password', 'payer_account', 'login_token', 'session_token', 'token', 'credential_secret'] as const

const camelCase = (name: string) => name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())

export const SECRET_FIELDS: readonly string[] = [...new Set(SECRET_PROTO_NAMES.flatMap((name) => [name, camelCase(name)]))]
const SECRETS = new Set(SECRET_FIELDS)

export const isSecretField = (name: string): boolean => SECRETS.has(name)

/**
 * A copy of `value` with every secret field, at any depth, replaced: strings by `censor` (''
 * keeps a request encodable by its codec), bytes by empty bytes. Other values are kept as they
 * are (Dates, bigints, Buffers stay what they were).
 */
export function withoutSecrets<T>(value: T, censor = ''): T {
  return blank(value, censor, 0) as T
}

function blank(value: unknown, censor: string, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > 32) return value
  if (value instanceof Date || value instanceof Uint8Array || value instanceof Error) return value
  if (Array.isArray(value)) return value.map((item) => blank(item, censor, depth + 1))
  const out: Record<string, unknown> = {}
  for (const [key, inner] of Object.entries(value)) {
    if (!isSecretField(key)) out[key] = blank(inner, censor, depth + 1)
    else if (typeof inner === 'string') out[key] = censor
    else if (inner instanceof Uint8Array) out[key] = new Uint8Array()
    else out[key] = censor
  }
  return out
}
