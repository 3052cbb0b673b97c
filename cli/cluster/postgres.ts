// The cluster's database: the one given (DATABASE_URL), a fresh database created on that server
// (`fresh`, so a run starts from nothing and leaves nothing), or a throwaway PostgreSQL server
// started by scripts/throwaway-postgres.sh; whatever this process created is removed on stop.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)
const SCRIPT = resolve(import.meta.dirname, '../../scripts/throwaway-postgres.sh')

export interface ClusterDatabase {
  readonly url: string
  /** Whether this process started the server (and so removes it). */
  readonly throwaway: boolean
  stop(): Promise<void>
}

export async function clusterDatabase(given: string | undefined, options: { fresh?: boolean } = {}): Promise<ClusterDatabase> {
  if (given && options.fresh) return freshOn(given)
  if (given) return { url: given, throwaway: false, stop: async () => undefined }
  const { stdout } = await run('bash', [SCRIPT], { maxBuffer: 1 << 20 })
  const [dir, url] = stdout.trim().split(/\s+/) as [string, string]
  return { url, throwaway: true, stop: async () => void (await run('bash', [SCRIPT, 'stop', dir])) }
}

async function freshOn(server: string): Promise<ClusterDatabase> {
  const name = `cloudpay_cluster_${randomBytes(4).toString('hex')}`
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: server })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  await admin(`CREATE DATABASE ${name}`)
  const url = new URL(server)
  url.pathname = `/${name}`
  return { url: url.toString(), throwaway: false, stop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}
