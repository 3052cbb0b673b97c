// Hostile requests derived from the descriptor image: for every field of a request (recursively)
// the values an attacker tries, encoded as the wire bytes a foreign client would send.
import { create, type DescField, type DescMessage, type Message, ScalarType, toBinary } from '@bufbuild/protobuf'

export interface HostileCase {
  /** The field's proto path, as a violation should name it (`amount.currency_code`). */
  readonly field: string
  readonly what: string
  readonly body: Buffer
  /** True when the refusal must name the field; false when it need only not be a server fault. */
  readonly named: boolean
}

const INT64_MAX = 2n ** 63n - 1n
const INT64_MIN = -(2n ** 63n)
/** Replaced in the encoded bytes by invalid UTF-8 of the same length. */
const MARKER = 'Zq9Zq9'
const INVALID_UTF8 = Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xff, 0xfe])

const isInt64 = (t: ScalarType) => [ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64].includes(t)
const isInt32 = (t: ScalarType) => [ScalarType.INT32, ScalarType.SINT32, ScalarType.SFIXED32].includes(t)

interface Leaf {
  readonly steps: readonly DescField[]
  readonly path: string
}

/** Every field reachable from `schema`, through nested messages (well-known types are leaves). */
function leaves(schema: DescMessage, prefix: readonly DescField[] = [], path = '', depth = 0): Leaf[] {
  const out: Leaf[] = []
  for (const field of schema.fields) {
    const steps = [...prefix, field]
    const name = path ? `${path}.${field.name}` : field.name
    out.push({ steps, path: name })
    if (field.fieldKind === 'message' && !field.message.typeName.startsWith('google.protobuf.') && depth < 4) out.push(...leaves(field.message, steps, name, depth + 1))
  }
  return out
}

function assign(target: Record<string, unknown>, field: DescField, value: unknown): void {
  if (field.oneof) target[field.oneof.localName] = { case: field.localName, value }
  else target[field.localName] = value
}

/** The request with only the field at `steps` set (to `value`), encoded. */
function encodeWith(schema: DescMessage, steps: readonly DescField[], value: unknown): Buffer {
  const root = create(schema) as unknown as Record<string, unknown>
  let target = root
  for (const step of steps.slice(0, -1)) {
    if (step.fieldKind !== 'message') throw new Error('only singular messages are walked into')
    const child = create(step.message) as unknown as Record<string, unknown>
    assign(target, step, child)
    target = child
  }
  assign(target, steps[steps.length - 1]!, value)
  return Buffer.from(toBinary(schema, root as unknown as Message))
}

function withInvalidUtf8(bytes: Buffer): Buffer {
  const at = bytes.indexOf(MARKER)
  if (at < 0) throw new Error('marker missing from the encoding')
  INVALID_UTF8.copy(bytes, at)
  return bytes
}

const STRING_VALUES: { what: string; value: string; invalidUtf8?: true }[] = [
  { what: 'a NUL byte', value: 'ab\u0000cd' },
  { what: 'a control character', value: 'ab\u001bcd' },
  { what: '100 KiB', value: 'a'.repeat(100 * 1024) },
  { what: '1,000 characters (over every declared maximum)', value: 'a'.repeat(1000) },
  { what: 'invalid UTF-8', value: MARKER, invalidUtf8: true },
  { what: 'a right-to-left override', value: 'ab\u202Ecd' },
  { what: 'a paragraph separator', value: 'ab\u2029cd' },
  { what: 'a noncharacter', value: 'ab\uFFFEcd' },
  { what: 'only spaces and a zero-width space', value: '  \u200B ' },
]

/** The hostile cases of one request type. */
export function hostileCases(schema: DescMessage): HostileCase[] {
  const cases: HostileCase[] = []
  for (const { steps, path } of leaves(schema)) {
    const field = steps[steps.length - 1]!
    const encode = (value: unknown) => encodeWith(schema, steps, value)
    if (field.fieldKind === 'scalar' && field.scalar === ScalarType.STRING) {
      for (const s of STRING_VALUES) cases.push({ field: path, what: s.what, named: true, body: s.invalidUtf8 ? withInvalidUtf8(encode(s.value)) : encode(s.value) })
    } else if (field.fieldKind === 'list' && field.listKind === 'scalar' && field.scalar === ScalarType.STRING) {
      cases.push({ field: path, what: 'a NUL byte in an element', named: true, body: encode(['ab\u0000cd']) })
    } else if (field.fieldKind === 'map' && field.mapKind === 'scalar' && field.scalar === ScalarType.STRING) {
      cases.push({ field: path, what: 'a NUL byte in a key', named: true, body: encode({ 'ab\u0000cd': 'x' }) })
      cases.push({ field: path, what: 'a NUL byte in a value', named: true, body: encode({ k: 'ab\u0000cd' }) })
    } else if (field.fieldKind === 'scalar' && field.scalar === ScalarType.BYTES) {
      cases.push({ field: path, what: '1 MiB of bytes', named: true, body: encode(new Uint8Array(1024 * 1024)) })
    } else if (field.fieldKind === 'scalar' && isInt64(field.scalar)) {
      cases.push({ field: path, what: 'int64 max', named: true, body: encode(INT64_MAX) })
      cases.push({ field: path, what: 'int64 min', named: true, body: encode(INT64_MIN) })
    } else if ((field.fieldKind === 'scalar' && isInt32(field.scalar)) || field.fieldKind === 'enum') {
      cases.push({ field: path, what: 'int32 max', named: false, body: encode(2 ** 31 - 1) })
      cases.push({ field: path, what: 'int32 min', named: false, body: encode(-(2 ** 31)) })
    } else if (field.fieldKind === 'message' && field.message.typeName === 'google.protobuf.Timestamp') {
      for (const seconds of [2n ** 62n, -(2n ** 62n)]) cases.push({ field: path, what: `a timestamp at ${seconds} s`, named: true, body: encode(create(field.message, { seconds })) })
    }
  }
  return cases
}

/** Bodies that are not a protobuf message at all. */
export const UNDECODABLE_BODIES: { what: string; body: Buffer }[] = [
  { what: 'garbage bytes', body: Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]) },
  { what: 'a length beyond the end', body: Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x61]) },
  { what: 'a truncated varint', body: Buffer.from([0x08, 0x80]) },
  { what: 'an invalid wire type', body: Buffer.from([0x0f, 0x01]) },
  // Unknown groups (field 15) nested 200 deep: past the decoder's recursion limit of 100.
  { what: 'groups nested too deep', body: Buffer.concat([Buffer.alloc(200, 0x7b), Buffer.alloc(200, 0x7c)]) },
]
