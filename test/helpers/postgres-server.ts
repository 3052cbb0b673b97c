// A PostgreSQL server of the test's own (scripts/throwaway-postgres.sh), so a test can stop and
// start it under a running mesh. Undefined where no PostgreSQL binaries are installed or the test
// cannot switch to the postgres user (CI has both: it installs them for the PostgreSQL run).
import { execFile } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const SCRIPT = new URL('../../scripts/throwaway-postgres.sh', import.meta.url).pathname

export interface PostgresServer {
  readonly url: string
  /** Fast shutdown: every connection is terminated (57P01), as in a restart or failover. */
  stop(): Promise<void>
  start(): Promise<void>
  /** Stops the server for good and removes its files. */
  remove(): Promise<void>
}

export function postgresBinariesPresent(): boolean {
  const root = '/usr/lib/postgresql'
  return process.getuid?.() === 0 && existsSync(root) && readdirSync(root).some((v) => existsSync(join(root, v, 'bin', 'initdb')))
}

export async function startPostgresServer(): Promise<PostgresServer | undefined> {
  if (!postgresBinariesPresent()) return undefined
  const { stdout } = await run('bash', [SCRIPT])
  const [dir, url] = stdout.trim().split(' ') as [string, string]
  const bin = (await run('cat', [join(dir, 'bindir')])).stdout.trim()
  const port = new URL(url).port
  const pgCtl = (...args: string[]) => run('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', join(dir, 'data'), ...args])
  return {
    url,
    stop: async () => {
      await pgCtl('-m', 'fast', '-w', 'stop')
    },
    start: async () => {
      await pgCtl('-l', join(dir, 'server.log'), '-w', '-o', `-p ${port} -k ${dir}/socket -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start')
    },
    remove: async () => {
      await run('bash', [SCRIPT, 'stop', dir])
    },
  }
}
