// Password and payment-password hashing: Argon2id at OWASP's recommended minimum
// (19 MiB memory, 2 iterations, 1 lane). Only the PHC string is ever stored.
import { Algorithm, hash, verify } from '@node-rs/argon2'

const OPTIONS = { algorithm: Algorithm.Argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export function hashPassword(password: string): Promise<string> {
  return hash(password, OPTIONS)
}

export function verifyPassword(phc: string, password: string): Promise<boolean> {
  return verify(phc, password)
}

let dummy: Promise<string> | undefined
/** Spends the same time as a real verification, for unknown accounts (no timing oracle). */
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummy ??= hashPassword('cloudpay-dummy-password')
  await verify(await dummy, password)
  return false
}
