// The cluster's database: the one given (DATABASE_URL), or a throwaway PostgreSQL server started
// by scripts/throwaway-postgres.sh and removed when the cluster stops.
import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const SCRIPT = resolve(import.meta.dirname, '../../scripts/throwaway-postgres.sh')

export interface ClusterDatabase {
  readonly url: string
  /** Whether this process started it (and so removes it). */
  readonly throwaway: boolean
  stop(): Promise<void>
}

export async function clusterDatabase(given: string | undefined): Promise<ClusterDatabase> {
  if (given) return { url: given, throwaway: false, stop: async () => undefined }
  const { stdout } = await run('bash', [SCRIPT], { maxBuffer: 1 << 20 })
  const [dir, url] = stdout.trim().split(/\s+/) as [string, string]
  return { url, throwaway: true, stop: async () => void (await run('bash', [SCRIPT, 'stop', dir])) }
}
