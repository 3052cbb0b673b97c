// The one part of pg's own value encoding (pg/lib/utils.js, which ships no declarations) that
// pipelined-transaction.ts uses: statements it sends itself encode their values as pg's do.
declare module 'pg/lib/utils.js' {
  /** A JavaScript value as pg sends it to the server (text), or null. */
  export function prepareValue(value: unknown): string | Buffer | null
  const utils: { prepareValue: typeof prepareValue }
  export default utils
}
