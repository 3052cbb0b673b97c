// Server-streaming writes that honour backpressure: a write that the transport cannot take waits
// for 'drain'; a subscriber that stays unwritable is cut off with RST_STREAM(ENHANCE_YOUR_CALM),
// which its client sees as RESOURCE_EXHAUSTED, so nothing piles up in the server for it.
import type { ServerWritableStream, ServiceDefinition, StatusObject } from '@grpc/grpc-js'
import { constants as http2 } from 'node:http2'
import { ResourceExhaustedError } from './errors.ts'

export class SubscriberTooSlowError extends ResourceExhaustedError {}

/** Writes one message; resolves once the stream can take more, or throws SubscriberTooSlowError. */
export async function writeWithBackpressure<Res>(
  stream: ServerWritableStream<unknown, Res>,
  message: Res,
  stallMs: number,
  signal: AbortSignal,
  resumeHint: string,
): Promise<void> {
  if (stream.write(message)) return
  await awaitDrain(stream, stallMs, signal, resumeHint)
}

/** Resolves once a full stream drained (at once if it is not full); cuts it off after stallMs. */
export async function awaitDrain(stream: ServerWritableStream<unknown, unknown>, stallMs: number, signal: AbortSignal, resumeHint: string): Promise<void> {
  if (!stream.writableNeedDrain || signal.aborted) return
  await new Promise<void>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      stream.off('drain', done)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(() => {
      stream.off('drain', done)
      signal.removeEventListener('abort', done)
      resetStream(stream)
      reject(new SubscriberTooSlowError('SUBSCRIBER_TOO_SLOW', `the subscriber did not read for ${stallMs} ms and was cut off; ${resumeHint}`))
    }, stallMs)
    stream.once('drain', done)
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Ends a server (or bidi) stream with `status`: grpc-js turns an 'error' event on it into the call's final status. */
export function endWithStatus(stream: { emit(event: 'error', error: Error): boolean }, status: StatusObject): void {
  stream.emit('error', Object.assign(new Error(status.details), status))
}

/**
 * Resets the HTTP/2 stream under a grpc-js server call, dropping whatever is buffered for it. A
 * status alone would queue behind the unread data. grpc-js exposes no API for this, so the call
 * chain (ServerWritableStream -> interceptors -> base call) is walked to its http2 stream.
 */
export function resetStream(stream: ServerWritableStream<unknown, unknown>): void {
  let node: unknown = stream
  for (let depth = 0; depth < 6 && node; depth++) {
    const candidate = (node as { stream?: { close?: (code: number) => void; destroyed?: boolean } }).stream
    if (candidate && typeof candidate.close === 'function') {
      if (!candidate.destroyed) candidate.close(http2.NGHTTP2_ENHANCE_YOUR_CALM)
      return
    }
    node = (node as { call?: unknown; nextCall?: unknown }).call ?? (node as { nextCall?: unknown }).nextCall
  }
  throw new Error('grpc-js internals changed: no http2 stream found under the call')
}

/**
 * The definition with each server-streaming method encoding a message object once, however many
 * streams it is written to: a fan-out writes one event object to thousands of subscribers, and
 * grpc-js would otherwise encode it once per stream. Streamed messages must not be mutated after
 * their first write (handlers build a fresh object per message).
 */
export function encodeStreamedMessagesOnce(definition: ServiceDefinition): ServiceDefinition {
  const shared: Record<string, ServiceDefinition[string]> = { ...definition }
  for (const [name, method] of Object.entries(definition)) {
    if (!method.responseStream) continue
    const encode = method.responseSerialize
    const encoded = new WeakMap<object, Buffer>()
    shared[name] = {
      ...method,
      responseSerialize: (value: unknown): Buffer => {
        if (typeof value !== 'object' || value === null) return encode(value)
        let bytes = encoded.get(value)
        if (!bytes) encoded.set(value, (bytes = encode(value)))
        return bytes
      },
    }
  }
  return shared
}

/** How widely a stopping replica spreads its subscribers' returns (RetryInfo on SHUTTING_DOWN). */
export const RESUBSCRIBE_SPREAD_MS = 2_000

/**
 * When one subscriber of a stopping replica should come back: uniformly within the spread, so a
 * failover of thousands of subscribers reaches the surviving replicas as a trickle, not at once.
 */
export const resubscribeDelayMs = (random: () => number = Math.random): number => 100 + Math.floor(random() * RESUBSCRIBE_SPREAD_MS)
