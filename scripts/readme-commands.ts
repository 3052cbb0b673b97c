// Runs every shell block of README.md as a reader pastes it, so the README cannot drift from
// what works. Each ```sh block is preceded by a marker saying how:
//   <!-- ci: run -->            run the block with bash (set -e); it must exit 0
//   <!-- ci: run with mesh -->  the same, while `npm start -- --no-demo` serves on the default ports
//   <!-- ci: serve -->          each line is a server: start it, wait until it serves, SIGTERM the
//                               command's own PID (as an orchestrator does) and require a clean stop
//   <!-- ci: skip: <reason> --> not run here, with the reason (e.g. which CI step runs it)
// A block without a marker fails the check. Usage: node --import tsx scripts/readme-commands.ts
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

const ROOT = new URL('..', import.meta.url).pathname
const GRPCURL_DIR = join(ROOT, '..', 'shared', 'tools', 'grpcurl')
const env = { ...process.env, PATH: `${GRPCURL_DIR}:${process.env.PATH}`, CLOUDPAY_LOG_FORMAT: 'json' }

interface Block {
  readonly line: number
  readonly marker: string
  readonly body: string
}

function blocks(readme: string): Block[] {
  const lines = readme.split('\n')
  const found: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i] !== '```sh') continue
    const end = lines.indexOf('```', i + 1)
    const marker = /^<!-- ci: (.+) -->$/.exec(lines[i - 1] ?? '')?.[1] ?? ''
    found.push({ line: i + 1, marker, body: lines.slice(i + 1, end).join('\n') })
    i = end
  }
  return found
}

interface Running {
  readonly output: () => string
  readonly exited: Promise<number | null>
  readonly pid: number
}

/** Runs bash with these arguments in its own process group. */
function start(bashArgs: string[]): Running {
  let output = ''
  const child = spawn('bash', bashArgs, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const closed = new Promise<void>((resolve) => child.stdout.on('close', () => resolve()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => closed.then(() => resolve(code))))
  return { output: () => output, exited, pid: child.pid! }
}

async function waitFor(running: Running, ready: RegExp, what: string, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let gone = false
  void running.exited.then(() => (gone = true))
  while (!ready.test(running.output())) {
    if (gone) throw new Error(`${what} ended before it served:\n${running.output().slice(-2000)}`)
    if (Date.now() > deadline) throw new Error(`${what} did not serve within ${timeoutMs} ms:\n${running.output().slice(-2000)}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/** SIGTERM to the command's own PID only; the whole process group must be gone within 30 s. */
async function stop(running: Running, what: string): Promise<void> {
  process.kill(running.pid, 'SIGTERM')
  const deadline = Date.now() + 30_000
  for (;;) {
    try {
      process.kill(-running.pid, 0)
    } catch {
      return
    }
    if (Date.now() > deadline) {
      process.kill(-running.pid, 'SIGKILL')
      throw new Error(`${what} did not stop within 30 s of SIGTERM`)
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const SERVING = /"msg":"serving"/

/** A server command line as its own process (exec, through env for leading VAR=value words), so a signal reaches it and not a shell. */
const serve = (command: string): Running => start(['-c', `exec env ${command}`])

async function run(script: string, what: string): Promise<void> {
  const running = start(['-euo', 'pipefail', '-c', script])
  const code = await running.exited
  process.stdout.write(running.output().replace(/^/gm, '    '))
  if (code !== 0) throw new Error(`${what} exited with ${code}`)
}

async function main(): Promise<number> {
  const all = blocks(readFileSync(join(ROOT, 'README.md'), 'utf8'))
  let failed = 0
  for (const block of all) {
    const what = `README.md:${block.line}`
    try {
      if (block.marker === 'run') {
        process.stdout.write(`== ${what}: run\n`)
        await run(block.body, what)
      } else if (block.marker === 'run with mesh') {
        process.stdout.write(`== ${what}: run with the mesh serving\n`)
        const mesh = serve('npm start -- --no-demo')
        try {
          await waitFor(mesh, SERVING, 'npm start')
          await run(block.body, what)
        } finally {
          await stop(mesh, 'npm start')
        }
      } else if (block.marker === 'serve') {
        for (const command of block.body.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))) {
          process.stdout.write(`== ${what}: serve ${command}\n`)
          const server = serve(command)
          await waitFor(server, SERVING, command)
          await stop(server, command)
          if (!/"msg":"stopped"/.test(server.output())) throw new Error(`${command} did not stop cleanly:\n${server.output().slice(-2000)}`)
        }
      } else if (block.marker.startsWith('skip: ')) {
        process.stdout.write(`== ${what}: skipped (${block.marker.slice('skip: '.length)})\n`)
      } else {
        throw new Error(`no <!-- ci: run | run with mesh | serve | skip: reason --> marker before the block`)
      }
    } catch (error) {
      failed++
      process.stdout.write(`!! ${what}: ${error instanceof Error ? error.message : String(error)}\n`)
    }
  }
  process.stdout.write(`README shell blocks: ${all.length - failed} ok, ${failed} failing\n`)
  return failed === 0 ? 0 : 1
}

process.exitCode = await main()
