// Follows a device's Notify stream from a test, waiting on events (never on sleeps).
import { Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import type { Event, InstanceEventsServiceClient, NotifyResponse } from '../../gen/cloudpay/events/v1/instance_events_service.ts'

export interface Subscriber {
  readonly events: Event[]
  /** Resolves once at least `count` events arrived (rejects if the stream ends first or after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<Event[]>
  /** Resolves with the first event matching `predicate` (rejects if the stream ends first or after timeoutMs). */
  waitForEvent(predicate: (event: Event) => boolean, timeoutMs?: number): Promise<Event>
  /** Resolves with the stream's final status code. */
  readonly ended: Promise<{ code: Status; details: string }>
  cancel(): void
}

export function subscribe(client: InstanceEventsServiceClient, deviceId: string, afterSequence = 0n): Subscriber {
  const events: Event[] = []
  const waiters = new Set<() => void>()
  const call = client.notify({ deviceId, afterSequence }, new Metadata())
  let endedWith: { code: Status; details: string } | undefined
  const ended = new Promise<{ code: Status; details: string }>((resolve) => {
    call.on('error', (error: ServiceError) => {
      endedWith = { code: error.code, details: error.details }
      resolve(endedWith)
      for (const w of waiters) w()
    })
    call.on('end', () => {
      endedWith ??= { code: Status.OK, details: '' }
      resolve(endedWith)
      for (const w of waiters) w()
    })
  })
  call.on('data', (message: NotifyResponse) => {
    if (message.event) events.push(message.event)
    for (const w of waiters) w()
  })
  return {
    events,
    ended,
    cancel: () => call.cancel(),
    async waitForEvent(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      for (let seen = 0; ;) {
        const found = events.slice(seen).find(predicate)
        if (found) return found
        seen = events.length
        await this.waitFor(seen + 1, Math.max(1, deadline - Date.now()))
      }
    },
    waitFor(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (events.length >= count) {
            cleanup()
            resolve(events.slice())
          } else if (endedWith) {
            cleanup()
            reject(new Error(`stream ended (${Status[endedWith.code]}: ${endedWith.details}) after ${events.length} of ${count} events`))
          }
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`timed out with ${events.length} of ${count} events`))
        }, timeoutMs)
        const cleanup = (): void => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      })
    },
  }
}
