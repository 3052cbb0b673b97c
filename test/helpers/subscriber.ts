// Follows a device's Notify stream, or a terminal's own stream, from a test, waiting on events
// (never on sleeps).
import { type ClientReadableStream, Metadata, type ServiceError, status as Status } from '@grpc/grpc-js'
import type { Event, InstanceEventsServiceClient, NotifyResponse, TerminalEvent, FollowTerminalResponse } from '../../gen/cloudpay/events/v1/instance_events_service.ts'
import { statusDetailsOf } from '../../services/runtime/errors.ts'

export interface Subscriber<E = Event> {
  readonly events: E[]
  /** Resolves once at least `count` events arrived (rejects if the stream ends first or after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<E[]>
  /** Resolves with the first event matching `predicate` (rejects if the stream ends first or after timeoutMs). */
  waitForEvent(predicate: (event: E) => boolean, timeoutMs?: number): Promise<E>
  /** Resolves with the stream's final status code (and its ErrorInfo reason and RetryInfo delay, if any). */
  readonly ended: Promise<Ended>
  cancel(): void
}

export interface Ended {
  readonly code: Status
  readonly details: string
  readonly reason?: string
  readonly retryAfterMs?: number
}

export function subscribe(client: InstanceEventsServiceClient, deviceId: string, afterSequence = 0n): Subscriber {
  return follow(client.notify({ deviceId, afterSequence }, new Metadata()), (message: NotifyResponse) => message.event)
}

/** Follows the calling terminal's own stream (FollowTerminal): the client's identity chooses it. */
export function followTerminal(client: InstanceEventsServiceClient, afterSequence = 0n): Subscriber<TerminalEvent> {
  return follow(client.followTerminal({ afterSequence }, new Metadata()), (message: FollowTerminalResponse) => message.event)
}

function follow<M, E>(call: ClientReadableStream<M>, eventOf: (message: M) => E | undefined): Subscriber<E> {
  const events: E[] = []
  const waiters = new Set<() => void>()
  let endedWith: Ended | undefined
  const ended = new Promise<Ended>((resolve) => {
    call.on('error', (error: ServiceError) => {
      const { reason, retryAfterMs } = statusDetailsOf(error.metadata)
      endedWith = { code: error.code, details: error.details, reason, retryAfterMs }
      resolve(endedWith)
      for (const w of waiters) w()
    })
    call.on('end', () => {
      endedWith ??= { code: Status.OK, details: '' }
      resolve(endedWith)
      for (const w of waiters) w()
    })
  })
  call.on('data', (message: M) => {
    const event = eventOf(message)
    if (event) events.push(event)
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
