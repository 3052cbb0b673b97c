// Start-up allocates a burst of objects that either live for the whole process (modules, descriptors,
// certificates) or die at once (parsing, migrations). Left to itself, V8 grows the young generation to
// its maximum for that burst (28 MB resident measured per service process), promotes part of the dead
// objects into old space (~10 MB per service), and gives both back only once its memory reducer sees
// the process at rest, seconds to minutes later, or never if requests keep coming. So, while a service
// starts its young generation is held at its initial size, and once it serves one compacting full GC
// (30-200 ms measured, once) collects the start-up garbage and hands its pages back; after that V8
// decides, exactly as before.
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

const GROWTH_FLAG = '--semi-space-growth-factor'
/** V8's own default for the flag (`node --v8-options`). */
const V8_DEFAULT_GROWTH = 2

/** Whether the operator tuned the young generation (node flags or NODE_OPTIONS): theirs wins. */
function tunedByOperator(): boolean {
  return [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((flag) => /semi[-_]space/.test(flag))
}

/**
 * One full GC that also compacts, so that pages emptied by start-up go back to the system. V8 offers
 * no API for it: `gc` exists only in a context made while --expose-gc is set, and compaction on a
 * forced GC needs --compact-on-every-full-gc; both flags are set for this one call and restored.
 */
export function compactHeapOnce(): void {
  const exposedByOperator = process.execArgv.includes('--expose-gc') || typeof globalThis.gc === 'function'
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  if (!exposedByOperator) setFlagsFromString('--no-expose-gc')
  setFlagsFromString('--compact-on-every-full-gc')
  try {
    gc()
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc')
  }
}

/** Holds the young generation at its size until the returned function is called (once serving), which compacts the heap once and lets it grow again. */
export function holdYoungGenerationWhileStarting(): () => void {
  const hold = !tunedByOperator()
  if (hold) setFlagsFromString(`${GROWTH_FLAG}=1`)
  return () => {
    compactHeapOnce()
    if (hold) setFlagsFromString(`${GROWTH_FLAG}=${V8_DEFAULT_GROWTH}`)
  }
}

