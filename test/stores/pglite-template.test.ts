// A new embedded database is a copy of a template cluster made once (services/runtime/pglite-template.ts):
// the copy is a working database of its own, an existing one is never replaced, concurrent makers agree
// on one template, and what a crash leaves behind (a half-made template, a half-copied database) is
// cleared instead of used.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { sql } from 'kysely'
import { openDatabase, type SharedDatabase } from '../../services/runtime/database.ts'
import { ensureTemplate, seedFromTemplate, templateDir, TEMPLATES_OFF } from '../../services/runtime/pglite-template.ts'
import { DATABASE_KIND } from '../helpers/database.ts'

const skip = DATABASE_KIND === 'postgres' ? 'the embedded database only' : false
let scratch: string
let templates: string

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'cloudpay-template-'))
  templates = join(scratch, 'templates')
  if (!skip) await ensureTemplate(templateDir(templates))
})
after(() => rm(scratch, { recursive: true, force: true }))

async function withDatabase<T>(dataDir: string, work: (database: SharedDatabase) => Promise<T>): Promise<T> {
  const database = await openDatabase({ databaseUrl: undefined, dataDir, pgliteTemplates: templates })
  try {
    return await work(database)
  } finally {
    await database.release()
  }
}

const tables = (database: SharedDatabase) =>
  sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = 'public'`.execute(database.db).then((r) => r.rows.map((row) => row.name))

test('a new database is a copy of the template, a database of its own, kept across restarts', { skip }, async () => {
  const first = join(scratch, 'home-a', 'db')
  const second = join(scratch, 'home-b', 'db')
  await withDatabase(first, async (database) => {
    await sql`create table kept (n int)`.execute(database.db)
    await sql`insert into kept values (7)`.execute(database.db)
  })
  assert.equal(existsSync(join(first, 'PG_VERSION')), true)
  // Reopened: the same data, not a new copy over it.
  await withDatabase(first, async (database) => {
    assert.deepEqual((await sql<{ n: number }>`select n from kept`.execute(database.db)).rows, [{ n: 7 }])
  })
  // Another database from the same template does not see the first one's table, and the template stays empty.
  await withDatabase(second, async (database) => assert.deepEqual(await tables(database), []))
  await withDatabase(join(scratch, 'home-c', 'db'), async (database) => assert.deepEqual(await tables(database), []))
})

test('an existing database, or a directory holding anything else, is never replaced', { skip }, async () => {
  const dataDir = join(scratch, 'home-d', 'db')
  await withDatabase(dataDir, (database) => sql`create table mine (n int)`.execute(database.db))
  assert.equal(await seedFromTemplate(dataDir, templates), false)
  await withDatabase(dataDir, async (database) => assert.deepEqual(await tables(database), ['mine']))

  const other = join(scratch, 'home-e', 'db')
  await mkdir(other, { recursive: true })
  await writeFile(join(other, 'notes.txt'), 'not a database')
  assert.equal(await seedFromTemplate(other, templates), false)
  assert.deepEqual(await readdir(other), ['notes.txt'])
})

test('a half-copied database left by a crash is cleared, not opened', { skip }, async () => {
  const dataDir = join(scratch, 'home-f', 'db')
  await mkdir(`${dataDir}.seeding/base`, { recursive: true })
  await writeFile(`${dataDir}.seeding/PG_VERSION`, '17\n')
  assert.equal(await seedFromTemplate(dataDir, templates), true)
  assert.equal(existsSync(`${dataDir}.seeding`), false)
  await withDatabase(dataDir, async (database) => assert.deepEqual(await tables(database), []))
})

test("two processes making the template at once agree on one, and a dead maker's half-made one is removed", { skip }, async () => {
  const root = join(scratch, 'race')
  const dir = templateDir(root)
  // A template left half-made by a process that is gone (a pid that cannot be running).
  const abandoned = `${dir}.making-${await deadPid()}`
  await mkdir(join(abandoned, 'base'), { recursive: true })
  const module = new URL('../../services/runtime/pglite-template.ts', import.meta.url).href
  const program = `const { ensureTemplate, templateDir } = await import(${JSON.stringify(module)})
    console.log(await ensureTemplate(templateDir(${JSON.stringify(root)})))`
  const made = await Promise.all([run(program), run(program)])
  assert.deepEqual(made, [dir, dir])
  assert.deepEqual(await readdir(root), [dir.slice(root.length + 1)], 'one template, nothing half-made left')
  const dataDir = join(scratch, 'home-g', 'db')
  assert.equal(await seedFromTemplate(dataDir, root), true)
  assert.equal(existsSync(join(dataDir, 'PG_VERSION')), true)
})

test('templates off, or a place where none can be kept: the database runs its own initdb', { skip }, async () => {
  assert.equal(await seedFromTemplate(join(scratch, 'home-h', 'db'), TEMPLATES_OFF), false)
  const file = join(scratch, 'a-file')
  await writeFile(file, '')
  const dataDir = join(scratch, 'home-i', 'db')
  assert.equal(await seedFromTemplate(dataDir, join(file, 'templates')), false)
  // The open itself still works, by initdb.
  const database = await openDatabase({ databaseUrl: undefined, dataDir, pgliteTemplates: join(file, 'templates') })
  try {
    assert.deepEqual(await tables(database), [])
  } finally {
    await database.release()
  }
})

function run(program: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}`))))
  })
}

/** The pid of a process that has exited (and so cannot own anything). */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' })
    child.on('error', reject)
    child.on('exit', () => resolve(child.pid!))
  })
}
