// The root safety net every request passes before any handler runs. A body that does not decode
// is refused as INVALID_ARGUMENT (grpc-js would answer INTERNAL); a decoded request is walked by
// its descriptor (nested messages, repeated, maps, oneofs) and refused, naming the field by its
// proto path, if it holds what no handler could want: NUL and other control characters, invalid
// UTF-8, strings or bytes past the hard caps, timestamps outside years 1-9999. Handlers still
// validate every field precisely (validation.ts); this catches whatever one of them misses.
import type { DescField, DescMessage } from '@bufbuild/protobuf'
import type { ServiceDefinition } from '@grpc/grpc-js'
import { serviceDescriptor } from './descriptor-image.ts'
import { type FieldViolation, InvalidArgumentError, quote, STATUS_LIMITS, truncate } from './errors.ts'
import { MAX_REQUEST_BYTES_LENGTH, MAX_REQUEST_STRING_LENGTH } from './limits.ts'

/** What a request body that does not decode becomes; refusalOf() turns it into INVALID_ARGUMENT. */
export class UnreadableRequest {
  constructor(readonly problem: string) {}
}

/** The definition with each request deserializer made total: undecodable bytes give an UnreadableRequest. */
export function readableRequests(definition: ServiceDefinition): ServiceDefinition {
  const total = ([name, method]: [string, ServiceDefinition[string]]) => {
    const decode = method.requestDeserialize
    const requestDeserialize = (bytes: Buffer): unknown => {
      try {
        return decode(bytes)
      } catch (error) {
        return new UnreadableRequest(error instanceof Error ? error.message : String(error))
      }
    }
    return [name, { ...method, requestDeserialize }]
  }
  return Object.fromEntries(Object.entries(definition).map(total)) as ServiceDefinition
}

const schemas = new Map<string, DescMessage>()

/** The request type of the RPC at `path` ("/pkg.Service/Method"), from the descriptor image. */
export function requestSchemaOf(path: string): DescMessage {
  let schema = schemas.get(path)
  if (!schema) {
    const [service, method] = path.slice(1).split('/')
    schema = serviceDescriptor(service ?? '')?.methods.find((m) => m.name === method)?.input
    if (!schema) throw new Error(`${path} is missing from the descriptor image; run npm run generate`)
    schemas.set(path, schema)
  }
  return schema
}

/** Why the request decoded for the RPC at `path` must be refused, or undefined if it may go on. */
export function refusalOf(path: string, request: unknown): InvalidArgumentError | undefined {
  const schema = requestSchemaOf(path)
  if (request instanceof UnreadableRequest) {
    const description = `is not a valid encoding of ${schema.typeName} (${truncate(request.problem, 80)})`
    return new InvalidArgumentError([{ field: '', description }], 'MALFORMED_REQUEST', `request ${description}`)
  }
  const violations = violationsOf(schema, request)
  return violations.length > 0 ? new InvalidArgumentError(violations) : undefined
}

/** What the screen finds wrong in a decoded (ts-proto) message of type `schema`. */
export function violationsOf(schema: DescMessage, message: unknown): FieldViolation[] {
  const violations: FieldViolation[] = []
  walkMessage(schema, message, '', violations)
  return violations
}

/** Tab and line feed may appear in free text; every other C0 control character never does. */
const CONTROL = /[\u0000-\u0008\u000B-\u001F]/
/** U+FFFD is what invalid UTF-8 decodes to; lone surrogates cannot be stored as UTF-8 at all. */
const NOT_UTF8 = /\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

function walkMessage(schema: DescMessage, message: unknown, path: string, out: FieldViolation[]): void {
  if (typeof message !== 'object' || message === null) return
  const fields = message as Record<string, unknown>
  for (const field of schema.fields) {
    if (out.length >= STATUS_LIMITS.violations) return
    const name = path ? `${path}.${field.name}` : field.name
    // ts-proto oneofs (oneof=unions-value): { $case: 'fieldName', value }.
    const holder = field.oneof ? (fields[field.oneof.localName] as { $case?: string; value?: unknown } | undefined) : undefined
    const value = field.oneof ? (holder?.$case === field.localName ? holder.value : undefined) : fields[field.localName]
    if (value === undefined || value === null) continue
    if (field.fieldKind === 'list' && Array.isArray(value)) {
      value.forEach((item, index) => checkValue(field, item, `${name}[${index}]`, out))
    } else if (field.fieldKind === 'map') {
      for (const [key, item] of Object.entries(value as object)) {
        const at = `${name}[${quote(key)}]`
        checkString(key, at, out, 'its key ')
        checkValue(field, item, at, out)
      }
    } else {
      checkValue(field, value, name, out)
    }
  }
}

function checkValue(field: DescField, value: unknown, name: string, out: FieldViolation[]): void {
  if (typeof value === 'string') return checkString(value, name, out)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) out.push({ field: name, description: 'must be a finite number' })
    return
  }
  if (value instanceof Uint8Array) {
    if (value.length > MAX_REQUEST_BYTES_LENGTH) out.push({ field: name, description: `must be at most ${MAX_REQUEST_BYTES_LENGTH} bytes` })
    return
  }
  // ts-proto decodes google.protobuf.Timestamp to a Date: seconds past ~2^43 give an Invalid Date.
  if (value instanceof Date) {
    const year = value.getUTCFullYear()
    if (!(year >= 1 && year <= 9999)) out.push({ field: name, description: 'must be a valid timestamp between the years 1 and 9999' })
    return
  }
  const message = (field as { message?: DescMessage }).message
  if (message) walkMessage(message, value, name, out)
}

function checkString(value: string, name: string, out: FieldViolation[], what = ''): void {
  if (value.length > MAX_REQUEST_STRING_LENGTH) out.push({ field: name, description: `${what}must be at most ${MAX_REQUEST_STRING_LENGTH} characters` })
  else if (CONTROL.test(value)) out.push({ field: name, description: `${what}must not contain NUL or other control characters (text may hold tab and line feed)` })
  else if (NOT_UTF8.test(value)) out.push({ field: name, description: `${what}must be valid UTF-8 (U+FFFD, what invalid UTF-8 decodes to, is refused too)` })
}
