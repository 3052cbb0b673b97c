// Assertions on gRPC outcomes.
import assert from 'node:assert/strict'
import { type ServiceError, status as Status } from '@grpc/grpc-js'
import { statusDetailsOf } from '../../services/runtime/errors.ts'

/** Awaits a call expected to fail with `code`; returns the error and its decoded details. */
export async function expectStatus(promise: Promise<unknown>, code: Status, messageIncludes?: string) {
  let error: ServiceError | undefined
  try {
    await promise
  } catch (caught) {
    error = caught as ServiceError
  }
  assert.ok(error, `expected ${Status[code]}, but the call succeeded`)
  assert.equal(error.code, code, `expected ${Status[code]}, got ${Status[error.code]}: ${error.details}`)
  if (messageIncludes) assert.match(error.details, new RegExp(messageIncludes.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
  return { error, ...statusDetailsOf(error.metadata) }
}

export const newRequestId = (): string => crypto.randomUUID()
