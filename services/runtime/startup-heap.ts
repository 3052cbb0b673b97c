// Start-up allocates a burst of objects that either live for the whole process (modules, descriptors,
// certificates) or die at once (parsing, migrations). For that burst V8 grows the young generation to its
// maximum (28 MB resident measured per service process) and gives it back only once the process has
// been at rest for a while, seconds to minutes later. Holding the young generation at its initial size
// while the process starts, and letting it grow again once it serves, keeps that burst out of an idle
// service's footprint; under load it grows as V8 decides, exactly as before.
import { setFlagsFromString } from 'node:v8'

const GROWTH_FLAG = '--semi-space-growth-factor'
/** V8's own default for the flag (`node --v8-options`). */
const V8_DEFAULT_GROWTH = 2

/** Whether the operator tuned the young generation (node flags or NODE_OPTIONS): theirs wins. */
function tunedByOperator(): boolean {
  return [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((flag) => /semi[-_]space/.test(flag))
}

/** Holds the young generation at its size until the returned function is called (once serving). */
export function holdYoungGenerationWhileStarting(): () => void {
  if (tunedByOperator()) return () => undefined
  setFlagsFromString(`${GROWTH_FLAG}=1`)
  return () => setFlagsFromString(`${GROWTH_FLAG}=${V8_DEFAULT_GROWTH}`)
}
