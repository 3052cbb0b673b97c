// Password and payment-password hashing: Argon2id at OWASP's recommended minimum
// (19 MiB memory, 2 iterations, 1 lane). Only the PHC string is ever stored.
import { context, type Tracer } from '@opentelemetry/api'
import { Algorithm, hash, verify } from '@node-rs/argon2'
import { SERVICE_TRACER } from './telemetry.ts'

const OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS)
}

export function verifyPassword(phc: string, password: string): Promise<boolean> {
  return traced(verify(phc, password))
}

/** A span per verification: the deliberate cost inside a login or a payment, visible in its trace. */
async function traced<T>(verification: Promise<T>): Promise<T> {
  const active = context.active()
  const span = (active.getValue(SERVICE_TRACER) as Tracer | undefined)?.startSpan('password verify', { attributes: { 'cloudpay.password.algorithm': 'argon2id' } }, active)
  try {
    return await verification
  } finally {
    span?.end()
  }
}

let dummy: Promise<string> | undefined
/** Spends the same time as a real verification, for unknown accounts (no timing oracle). */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword('cloudpay-dummy-password')
  await traced(verify(await dummy, password))
  return false
}
