// The one error mapper: database refusals and outages get precise statuses (never INTERNAL), and
// nothing it emits is unbounded, whatever a handler put into an error.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createServer } from 'node:net'
import { status as Status } from '@grpc/grpc-js'
import { sql } from 'kysely'
import pg from 'pg'
import { forSchema } from '../../services/runtime/database.ts'
import { InvalidArgumentError, NotFoundError, quote, STATUS_LIMITS, statusDetailsOf, toServiceStatus } from '../../services/runtime/errors.ts'
import { openFresh } from '../helpers/database.ts'

let opened: Awaited<ReturnType<typeof openFresh>>
before(async () => {
  opened = await openFresh()
  await sql`create table short_text (v varchar(5))`.execute(forSchema(opened.database, 'public'))
})
after(async () => {
  await opened?.close()
})

async function failureOf(query: ReturnType<typeof sql>): Promise<unknown> {
  try {
    await query.execute(forSchema(opened.database, 'public'))
  } catch (error) {
    return error
  }
  assert.fail('the query succeeded')
}

test('every data exception the database raises is INVALID_ARGUMENT with a message that echoes no input', async () => {
  const refused = [
    sql`select 9223372036854775807::int8 + ${1}::int8`, // 22003 numeric value out of range
    sql`select ${'nul\u0000inside'}::text`, // 22021 invalid byte sequence
    sql`select ${'secret-looking-input'}::int`, // 22P02 invalid text representation
    sql`select ${'2020-13-45'}::timestamptz`, // 22008 datetime field overflow
    sql`insert into short_text values (${'y'.repeat(20)})`, // 22001 string data right truncation
    sql`select 1 / ${0}::int`, // 22012 division by zero
  ]
  for (const query of refused) {
    const error = await failureOf(query)
    const { status, unexpected } = toServiceStatus(error)
    assert.equal(status.code, Status.INVALID_ARGUMENT, `${(error as Error).message} -> ${Status[status.code]}`)
    assert.equal(statusDetailsOf(status.metadata).reason, 'INVALID_VALUE')
    assert.doesNotMatch(status.details, /secret-looking|nul|2020|yyy/)
    assert.equal(unexpected, true, 'still logged: validation should have caught it')
  }
})

test('a database out of reach is UNAVAILABLE with reason DATABASE_UNAVAILABLE', async () => {
  // A real refusal from pg: a port that was just free.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number }
      probe.close(() => resolve(port))
    })
  })
  const client = new pg.Client({ host: '127.0.0.1', port, user: 'nobody', database: 'none', connectionTimeoutMillis: 2000 })
  const refused = await client.connect().then(
    () => assert.fail('connected'),
    (error: unknown) => error,
  )
  const shapes = [
    refused,
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
    Object.assign(new Error('the database system is starting up'), { code: '57P03' }),
    Object.assign(new Error('connection failure'), { code: '08006' }),
    new Error('Connection terminated unexpectedly'),
    new Error('query failed', { cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }) }),
  ]
  for (const error of shapes) {
    const { status } = toServiceStatus(error)
    assert.equal(status.code, Status.UNAVAILABLE, String(error))
    assert.equal(statusDetailsOf(status.metadata).reason, 'DATABASE_UNAVAILABLE')
  }
  assert.equal(toServiceStatus(new Error('anything else')).status.code, Status.INTERNAL)
})

test('messages, violations and ErrorInfo metadata are bounded whatever the handler put in them', () => {
  const huge = 'x'.repeat(1 << 20)
  const { status } = toServiceStatus(new NotFoundError('NOT_FOUND_HERE', `no thing ${huge}`, { thing: huge }))
  assert.ok(status.details.length <= STATUS_LIMITS.message)
  const bin = status.metadata.get('grpc-status-details-bin')[0] as Buffer
  assert.ok(bin.length < 2048, `details are ${bin.length} bytes`)

  const many = new InvalidArgumentError(Array.from({ length: 1000 }, (_, i) => ({ field: `f${i}${huge}`, description: huge })))
  const mapped = toServiceStatus(many).status
  const { violations } = statusDetailsOf(mapped.metadata)
  assert.equal(violations.length, STATUS_LIMITS.violations)
  for (const v of violations) assert.ok(v.field.length <= STATUS_LIMITS.field && v.description.length <= STATUS_LIMITS.description)
  assert.ok(mapped.details.length <= STATUS_LIMITS.message)
})

test('quote() shows a request value briefly and safely', () => {
  assert.equal(quote('abc'), '"abc"')
  assert.equal(quote('a\u0000b'), '"a\\u0000b"')
  const long = quote('z'.repeat(10_000))
  assert.ok(long.length <= 42 && long.endsWith('…"'))
  // Never half a surrogate pair.
  assert.doesNotMatch(quote('😀'.repeat(100)), /[\uD800-\uDBFF](?![\uDC00-\uDFFF])/)
})
