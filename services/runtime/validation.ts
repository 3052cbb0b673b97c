// Request-shape checks at the handler edge: each failure names the field (by its proto name) and
// the problem; all failures of a request are reported together as one INVALID_ARGUMENT.
import { type FieldViolation, InvalidArgumentError } from './errors.ts'
import { ID_PATTERN } from './identity.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const CURRENCY = /^[A-Z]{3}$/

export interface MoneyLike {
  readonly currencyCode: string
  readonly amountMinor: bigint
}

export class Validator {
  private readonly violations: FieldViolation[] = []

  /** Records a violation unless `ok`. */
  check(ok: boolean, field: string, description: string): this {
    if (!ok) this.violations.push({ field, description })
    return this
  }

  /** AIP-155 request id: a UUID. */
  requestId(value: string, field = 'request_id'): this {
    if (value === '') return this.check(false, field, 'is required (a UUID that stays the same across retries)')
    return this.check(UUID.test(value), field, 'must be a UUID')
  }

  /** An id: 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit. */
  id(value: string, field: string): this {
    if (value === '') return this.check(false, field, 'is required')
    return this.check(ID_PATTERN.test(value), field, 'must be 1-128 characters of [A-Za-z0-9._-], starting with a letter or digit')
  }

  /** An opaque token-like id (login ids are base64url): 1-128 characters of [A-Za-z0-9._-]. */
  opaqueId(value: string, field: string): this {
    if (value === '') return this.check(false, field, 'is required')
    return this.check(/^[A-Za-z0-9._-]{1,128}$/.test(value), field, 'must be 1-128 characters of [A-Za-z0-9._-]')
  }

  text(value: string, field: string, bounds: { min?: number; max: number }): this {
    const min = bounds.min ?? 0
    if (min > 0 && value === '') return this.check(false, field, 'is required')
    const length = [...value].length
    return this.check(length >= min && length <= bounds.max, field, `must be ${min}-${bounds.max} characters`)
  }

  /** Money: an ISO 4217 code and a non-negative (or, with `positive`, > 0) amount. */
  money(value: MoneyLike | undefined, field: string, options: { positive?: boolean } = {}): this {
    if (!value) return this.check(false, field, 'is required')
    this.check(CURRENCY.test(value.currencyCode), `${field}.currency_code`, 'must be a three-letter ISO 4217 code in upper case')
    if (options.positive) return this.check(value.amountMinor > 0n, `${field}.amount_minor`, 'must be greater than 0')
    return this.check(value.amountMinor >= 0n, `${field}.amount_minor`, 'must not be negative')
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
