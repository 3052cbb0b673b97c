// Carrying one trace across asynchronous steps: the context (W3C traceparent and baggage) is
// stored with what travels later (an order, an outbox delivery, a pipe event) and restored when
// the later step runs. Baggage entries named cloudpay.* (the order id, the device id...) become
// attributes of every span started under them, in every service they reach.
import { type Attributes, type Context, context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api'
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace-base'

export interface TraceTags {
  readonly orderId?: string
  readonly deviceId?: string
  readonly platformId?: string
  readonly loginId?: string
}

const BAGGAGE_KEYS: Record<keyof TraceTags, string> = {
  orderId: 'cloudpay.order_id',
  deviceId: 'cloudpay.device_id',
  platformId: 'cloudpay.platform_id',
  loginId: 'cloudpay.login_id',
}

/** The active context as a string to store (empty when there is no trace). */
export function captureContext(from: Context = context.active()): string {
  const carrier: Record<string, string> = {}
  propagation.inject(from, carrier)
  return carrier.traceparent ? JSON.stringify(carrier) : ''
}

/** A stored context, ready to run under (the root context when nothing was stored). */
export function restoreContext(stored: string | undefined): Context {
  if (!stored) return ROOT_CONTEXT
  try {
    return propagation.extract(ROOT_CONTEXT, JSON.parse(stored) as Record<string, string>)
  } catch {
    return ROOT_CONTEXT
  }
}

/** Just the W3C traceparent of a context (what events and orders expose to clients). */
export function traceParentOf(from: Context = context.active()): string {
  const carrier: Record<string, string> = {}
  propagation.inject(from, carrier)
  return carrier.traceparent ?? ''
}

/** A context continuing the trace of a W3C traceparent (as a client does with an event's). */
export function contextFromTraceParent(traceParent: string, base: Context = ROOT_CONTEXT): Context {
  return traceParent ? propagation.extract(base, { traceparent: traceParent }) : base
}

/**
 * Tags the rest of a handler: the current span gets the attributes now, and the work runs under
 * baggage carrying them, so spans it causes (outgoing calls, other services, queries) get them too.
 */
export function tagged<T>(tags: TraceTags, work: () => Promise<T>): Promise<T> {
  const active = context.active()
  const span = trace.getSpan(active)
  let baggage = propagation.getBaggage(active) ?? propagation.createBaggage()
  for (const [key, value] of Object.entries(tags) as [keyof TraceTags, string | undefined][]) {
    if (!value) continue
    span?.setAttribute(BAGGAGE_KEYS[key], value)
    baggage = baggage.setEntry(BAGGAGE_KEYS[key], { value })
  }
  return context.with(propagation.setBaggage(active, baggage), work)
}

/** Copies cloudpay.* baggage entries onto every span as it starts. */
export class BaggageAttributesProcessor implements SpanProcessor {
  onStart(span: Span, parentContext: Context): void {
    const baggage = propagation.getBaggage(parentContext)
    if (!baggage) return
    const attributes: Attributes = {}
    for (const [key, entry] of baggage.getAllEntries()) if (key.startsWith('cloudpay.')) attributes[key] = entry.value
    span.setAttributes(attributes)
  }
  onEnd(_span: ReadableSpan): void {}
  forceFlush(): Promise<void> {
    return Promise.resolve()
  }
  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
