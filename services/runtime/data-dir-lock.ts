// The embedded database is one process's alone: PGlite has no locking of its own, and two
// processes opening one data directory lost writes and never saw each other's events. The lock
// is a file holding the owner's pid, taken with an exclusive create; a lock left by a process
// that no longer runs (a crash) is taken over.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs'

export class DataDirectoryInUseError extends Error {}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Takes the lock for `dataDir` (file `<dataDir>.lock`); returns its release. */
export function lockDataDirectory(dataDir: string): () => void {
  const file = `${dataDir}.lock`
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 })
      let released = false
      return () => {
        if (released) return
        released = true
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file)
        } catch {
          // already gone
        }
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = Number(readFileSync(file, 'utf8').trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new DataDirectoryInUseError(
          `the embedded database ${dataDir} is in use by process ${owner}; the embedded database serves one process. ` +
            'Run every service in that process (npm start), give this one another CLOUDPAY_HOME, or share a PostgreSQL server with DATABASE_URL',
        )
      }
      unlinkSync(file) // left by a process that is gone
    }
  }
  throw new DataDirectoryInUseError(`could not take the lock ${file}`)
}
