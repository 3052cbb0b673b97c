// A new embedded database starts as a copy of an empty cluster made once per machine and PGlite
// version, not from its own initdb: PGlite runs initdb in WebAssembly through a second instance of
// itself, 6.6 s of a 7 s fresh open measured here, where copying the 39 MB cluster takes 0.1 s.
// `npm install` makes the template (scripts/pglite-template.mjs); a start that finds none makes it.
import type { PGlite } from '@electric-sql/pglite'
import { copyFile, mkdir, readdir, rename, rm } from 'node:fs/promises'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { processAlive } from './data-dir-lock.ts'

/** `CLOUDPAY_PGLITE_TEMPLATES`: where templates are kept, or `off` for an initdb per database. */
export const TEMPLATES_OFF = 'off'

/** PGlite, loaded only where the embedded database is used (never beside PostgreSQL). */
export const loadPGlite = async (): Promise<typeof PGlite> => (await import('@electric-sql/pglite')).PGlite

const pglitePackageDir = (): string => resolve(dirname(createRequire(import.meta.url).resolve('@electric-sql/pglite')), '..')

/** `node_modules/.cache/cloudpay`, beside the PGlite this process loads (the usual home of tools' caches). */
export function defaultTemplateRoot(): string {
  return join(pglitePackageDir(), '..', '..', '.cache', 'cloudpay')
}

/** The template's directory for the PGlite this process loads, under `root` (default: defaultTemplateRoot). */
export function templateDir(root: string = defaultTemplateRoot()): string {
  const { version } = JSON.parse(readFileSync(join(pglitePackageDir(), 'package.json'), 'utf8')) as { version: string }
  return join(root, `pglite-${version}`)
}

const isCluster = (dir: string): boolean => existsSync(join(dir, 'PG_VERSION'))

/**
 * Makes `dataDir` a copy of the template when it holds no cluster yet (making the template first if
 * need be); leaves an existing cluster alone. Returns whether it seeded; false when templates are
 * off or cannot be kept (an unwritable node_modules): PGlite then runs initdb itself, as before.
 */
export async function seedFromTemplate(dataDir: string, root: string | undefined): Promise<boolean> {
  if (root === TEMPLATES_OFF || isCluster(dataDir)) return false
  if (existsSync(dataDir) && (await readdir(dataDir)).length > 0) return false // not ours to fill
  let template: string
  try {
    template = await ensureTemplate(templateDir(root))
  } catch {
    return false
  }
  // Copied beside it, then renamed: a crash mid-copy leaves no half cluster where the database goes.
  // The caller holds the data directory's lock, so a staging copy found here is a crashed one's.
  const staging = `${dataDir}.seeding`
  await rm(staging, { recursive: true, force: true })
  await mkdir(dirname(dataDir), { recursive: true })
  await copyTree(template, staging)
  await rm(dataDir, { recursive: true, force: true }) // an empty directory, checked above
  await rename(staging, dataDir)
  return true
}

/** The template's directory, made by this call when missing; a concurrent maker's wins the rename. */
export async function ensureTemplate(dir: string): Promise<string> {
  if (isCluster(dir)) return dir
  await mkdir(dirname(dir), { recursive: true })
  await removeAbandoned(dir)
  const making = `${dir}.making-${process.pid}`
  await rm(making, { recursive: true, force: true })
  const pglite = await (await loadPGlite()).create({ dataDir: making })
  await pglite.close() // shut down cleanly: the copies start without recovery
  try {
    await rename(making, dir)
  } catch (error) {
    await rm(making, { recursive: true, force: true })
    if (!isCluster(dir)) throw error
  }
  return dir
}

/** Removes half-made templates of processes that are gone (a crash or Ctrl-C during initdb). */
async function removeAbandoned(dir: string): Promise<void> {
  const prefix = `${dir.slice(dirname(dir).length + 1)}.making-`
  for (const name of await readdir(dirname(dir))) {
    const pid = name.startsWith(prefix) ? Number(name.slice(prefix.length)) : NaN
    if (Number.isInteger(pid) && pid !== process.pid && !processAlive(pid)) await rm(join(dirname(dir), name), { recursive: true, force: true })
  }
}

/** A parallel copy: `fs.cp` took 1.4 s for the cluster's 971 files, this 0.1 s. */
async function copyTree(from: string, to: string): Promise<void> {
  await mkdir(to, { mode: 0o700 })
  const entries = await readdir(from, { withFileTypes: true })
  await Promise.all(entries.map((e) => (e.isDirectory() ? copyTree(join(from, e.name), join(to, e.name)) : copyFile(join(from, e.name), join(to, e.name)))))
}
