// Request-shape checks at the handler edge, in one vocabulary every handler uses: each string
// field has a declared maximum and a character rule (a format for ids and tokens, printable text
// for free text), each number a range, each timestamp a bound. Each failure names the field (by
// its proto name) and the problem without echoing the value; all failures of a request are
// reported together as one INVALID_ARGUMENT. The root screen (request-screen.ts) is the net below.
import { type FieldViolation, InvalidArgumentError } from './errors.ts'
import { ID_PATTERN } from './identity.ts'
import { type PageRequest, pageRequestViolations } from './pagination.ts'

/** A string format: an anchored pattern with its length bound, and how to say what it wants. */
export interface Format {
  readonly pattern: RegExp
  readonly description: string
}

export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** 32 random bytes in base64url: login tokens, session tokens. */
export const bearerToken = (issuer: string): Format => ({ pattern: /^[A-Za-z0-9_-]{43}$/, description: `must be a token returned by ${issuer}` })
export const CURRENCY: Format = { pattern: /^[A-Z]{3}$/, description: 'must be a three-letter ISO 4217 code in upper case' }

/**
 * The largest amount any request may carry: 10^12 minor units (10 billion in a currency with
 * cents). Far above any payment, and far enough below 2^63 that no balance sum overflows.
 */
export const MAX_AMOUNT_MINOR = 10n ** 12n
/** Event sequences and other counters stay below 2^53, exact as a JavaScript number too. */
export const MAX_SEQUENCE = 2n ** 53n - 1n

/** Never in free text: C0 controls (tab and line feed only where multi-line), DEL, C1 controls, U+FFFD, lone surrogates. */
const NOT_TEXT = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\uFFFD]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
/**
 * Nor what makes text read other than it is: bidirectional overrides and isolates (a terminal's
 * name shown reversed, "Trojan Source"), line and paragraph separators (line breaks no one asked
 * for), and noncharacters (never interchanged text).
 */
const DECEPTIVE = /[\p{Bidi_Control}\u2028\u2029\p{Noncharacter_Code_Point}]/u
/** Text that shows nothing: only spaces and invisible characters. */
const BLANK = /^[\p{White_Space}\p{Default_Ignorable_Code_Point}]*$/u
const LINE_BREAK_OR_TAB = /[\t\n]/

export interface MoneyLike {
  readonly currencyCode: string
  readonly amountMinor: bigint
}

export class Validator {
  private readonly violations: FieldViolation[] = []

  /** Records a violation unless `ok`. */
  check(ok: boolean, field: string, description: string, reason?: string): this {
    if (!ok) this.violations.push({ field, description, reason })
    return this
  }

  /** AIP-155 request id: a UUID. */
  requestId(value: string, field = 'request_id'): this {
    if (value === '') return this.check(false, field, 'is required (a UUID that stays the same across retries)')
    return this.check(UUID_PATTERN.test(value), field, 'must be a UUID')
  }

  /** A value of a fixed format (an id we issued, a token, a code); '' only when `optional`. */
  format(value: string, field: string, format: Format, options: { optional?: boolean } = {}): this {
    if (value === '') return this.check(options.optional === true, field, 'is required')
    return this.check(format.pattern.test(value), field, format.description)
  }

  /** An id: 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit. */
  id(value: string, field: string, options: { optional?: boolean } = {}): this {
    return this.format(value, field, { pattern: ID_PATTERN, description: 'must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit' }, options)
  }

  /** An opaque token-like id (login ids are base64url): 1-128 characters of [A-Za-z0-9._-]. */
  opaqueId(value: string, field: string): this {
    return this.format(value, field, { pattern: /^[A-Za-z0-9._-]{1,128}$/, description: 'must be 1-128 characters of [A-Za-z0-9._-]' })
  }

  /** Free text (a reason, a description, a password): min-max characters, printable, plain, never blank; tab and line feed only if multi-line. */
  text(value: string, field: string, bounds: { min?: number; max: number; multiline?: boolean }): this {
    const min = bounds.min ?? 0
    if (min > 0 && value === '') return this.check(false, field, 'is required')
    // Counted in characters (code points), checked for length first: the value may be huge.
    const length = value.length > bounds.max * 2 ? Infinity : [...value].length
    if (!(length >= min && length <= bounds.max)) return this.check(false, field, `must be ${min}-${bounds.max} characters`)
    if (NOT_TEXT.test(value)) return this.check(false, field, 'must be printable text (no control characters, no U+FFFD, valid UTF-8)')
    if (DECEPTIVE.test(value)) return this.check(false, field, 'must be plain text (no bidirectional controls, line or paragraph separators, or noncharacters)')
    // Blank where text is required, and where it is optional too (empty says "none" plainly).
    if (value !== '' && BLANK.test(value)) return this.check(false, field, `must not be blank (only spaces or invisible characters)${min > 0 ? '' : '; leave it empty instead'}`)
    return this.check(bounds.multiline === true || !LINE_BREAK_OR_TAB.test(value), field, 'must be one line (no tab or line feed)')
  }

  /** Opaque bytes (a sealed blob, a key): min-max bytes; the bytes are never described. */
  bytes(value: Uint8Array, field: string, bounds: { min?: number; max: number }): this {
    const min = bounds.min ?? 0
    if (min > 0 && value.length === 0) return this.check(false, field, 'is required')
    return this.check(value.length >= min && value.length <= bounds.max, field, `must be ${min}-${bounds.max} bytes`)
  }

  /** An integer within [min, max]. */
  integer(value: number | bigint, field: string, range: { min: number | bigint; max: number | bigint }): this {
    const ok = (typeof value === 'bigint' || Number.isInteger(value)) && value >= range.min && value <= range.max
    return this.check(ok, field, `must be an integer from ${range.min} to ${range.max}`)
  }

  /** Money: an ISO 4217 code and an amount from 0 (or, with `positive`, 1) to MAX_AMOUNT_MINOR. */
  money(value: MoneyLike | undefined, field: string, options: { positive?: boolean } = {}): this {
    if (!value) return this.check(false, field, 'is required')
    this.format(value.currencyCode, `${field}.currency_code`, CURRENCY)
    return this.integer(value.amountMinor, `${field}.amount_minor`, { min: options.positive ? 1n : 0n, max: MAX_AMOUNT_MINOR })
  }

  /** A point in time between the years 1 and 9999 (the root screen refuses others too). */
  timestamp(value: Date | undefined, field: string, options: { required?: boolean } = {}): this {
    if (value === undefined) return this.check(options.required !== true, field, 'is required')
    const year = value.getUTCFullYear()
    return this.check(year >= 1 && year <= 9999, field, 'must be a valid timestamp between the years 1 and 9999')
  }

  /** An enum value among `allowed`. */
  oneOf(value: number, field: string, allowed: readonly number[], description: string): this {
    return this.check(allowed.includes(value), field, description)
  }

  /** AIP-158 page_size and page_token shape, by pagination.ts's rules (whose token it is, listPage checks). */
  page(request: PageRequest): this {
    for (const violation of pageRequestViolations(request)) this.check(false, violation.field, violation.description, violation.reason)
    return this
  }

  /** Throws INVALID_ARGUMENT listing every violation, if there are any. */
  done(): void {
    if (this.violations.length > 0) throw new InvalidArgumentError(this.violations)
  }
}

export function validate(build: (v: Validator) => void): void {
  const validator = new Validator()
  build(validator)
  validator.done()
}
