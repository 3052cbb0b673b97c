// Account numbers at rest: sealed with AES-256-GCM (the row's id as associated data, so a sealed
// value cannot be moved to another row) and looked up by a keyed hash, never stored in clear.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from './config.ts'

/** Keyed hashes under the data key: the same on every replica, useless to whoever lacks the key. */
export interface Fingerprinter {
  /** HMAC-SHA-256 of `value` for `purpose` (base64url); purposes keep one use's hashes apart from another's. */
  fingerprint(value: string, purpose: string): string
}

export class Sealer implements Fingerprinter {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the data key must be 32 bytes')
  }

  seal(plain: string, context: string): Buffer {
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', this.key, iv)
    cipher.setAAD(Buffer.from(context))
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
    return Buffer.concat([iv, cipher.getAuthTag(), body])
  }

  open(sealed: Uint8Array, context: string): string {
    const data = Buffer.from(sealed)
    const decipher = createDecipheriv('aes-256-gcm', this.key, data.subarray(0, 12))
    decipher.setAAD(Buffer.from(context))
    decipher.setAuthTag(data.subarray(12, 28))
    return Buffer.concat([decipher.update(data.subarray(28)), decipher.final()]).toString('utf8')
  }

  /** A stable keyed hash for equality lookups (base64url). */
  fingerprint(value: string, purpose: string): string {
    return createHmac('sha256', this.key).update(`${purpose}\0${value}`).digest('base64url')
  }
}

/** "****1234": all but the last four characters hidden. */
export function maskAccount(account: string): string {
  return `****${account.slice(-4)}`
}

/** The data key from CLOUDPAY_DATA_KEY, or a development key created once under <home>/keys. */
export async function loadSealer(config: Config): Promise<Sealer> {
  if (config.dataKey) return new Sealer(Buffer.from(config.dataKey, 'base64'))
  const dir = join(config.home, 'keys')
  const file = join(dir, 'data.key')
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
    await writeFile(temp, randomBytes(32).toString('base64'), { mode: 0o600 })
    // link() refuses to replace: when processes race, the first key wins and all read it.
    await link(temp, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error
    })
    await rm(temp, { force: true })
  }
  return new Sealer(Buffer.from((await readFile(file, 'utf8')).trim(), 'base64'))
}
