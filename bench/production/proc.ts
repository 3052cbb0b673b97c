// CPU time and resident memory of other processes, from Linux's /proc (the production-shape
// benchmark measures each service, the load generator and PostgreSQL's backends separately).
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100
  } catch {
    return 100
  }
})()

interface Stat {
  readonly ppid: number
  /** utime + stime, in ms. */
  readonly cpuMs: number
  /** cutime + cstime (reaped children), in ms. */
  readonly childrenCpuMs: number
}

function stat(pid: number): Stat | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const ticks = (i: number) => Number(fields[i - 3])
  return { ppid: ticks(4), cpuMs: ((ticks(14) + ticks(15)) * 1000) / TICKS_PER_SECOND, childrenCpuMs: ((ticks(16) + ticks(17)) * 1000) / TICKS_PER_SECOND }
}

/** CPU time (user + system, all threads) the process has used so far, in ms; NaN once it is gone. */
export function processCpuMs(pid: number): number {
  return stat(pid)?.cpuMs ?? Number.NaN
}

/** Resident memory of the process now, in bytes. */
export function residentBytes(pid: number): number {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'))
    return Number(line?.split(/\s+/)[1]) * 1024
  } catch {
    return Number.NaN
  }
}

/**
 * The CPU of a whole PostgreSQL cluster: the postmaster (its pid is the first line of
 * postmaster.pid in the data directory), every live child (backends, checkpointer, WAL writer...),
 * and the children already reaped (their time lands in the postmaster's cutime/cstime).
 */
export function clusterCpuMs(postmasterPid: number): number {
  const postmaster = stat(postmasterPid)
  if (!postmaster) return Number.NaN
  let total = postmaster.cpuMs + postmaster.childrenCpuMs
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const child = stat(Number(entry))
    if (child?.ppid === postmasterPid) total += child.cpuMs
  }
  return total
}

export function postmasterPid(dataDirectory: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDirectory, 'postmaster.pid'), 'utf8').split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}
