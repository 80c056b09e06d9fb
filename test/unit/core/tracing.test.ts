/**
 * Tracing without a collector: no endpoint installs nothing; an endpoint installs the
 * OpenTelemetry tracer; W3C `traceparent` in and out; the trace context carried through the
 * in-process queue. (Export to a collector: test/integration/tracing/tracing.test.ts.)
 */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Deferred, Effect, Layer, Option, Tracer } from "effect"
import { AppConfig } from "../../../src/core/config.ts"
import { makeInProcessJobQueue } from "../../../src/core/queue/job-queue.ts"
import { parentFromTraceparent, traceparentOf, TracingLive } from "../../../src/core/tracing.ts"
import { Payload, payload } from "../../fixtures/queue-contract.ts"

const tracing = (config: Record<string, string>) =>
  TracingLive("api").pipe(
    Layer.provide(AppConfig.Default),
    Layer.provide(
      Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ NODE_ENV: "test", ...config }))))
    )
  )

describe("TracingLive", () => {
  it.effect("without OTEL_EXPORTER_OTLP_ENDPOINT: no exporter, Effect's own tracer stays", () =>
    Effect.gen(function* () {
      const before = yield* Effect.tracer
      const within = yield* Effect.tracer.pipe(Effect.provide(tracing({})))
      expect(within).toBe(before)
      // Spans are still made (and carry W3C ids), they just go nowhere.
      const span = yield* Effect.currentSpan.pipe(Effect.withSpan("probe"), Effect.provide(tracing({})))
      expect(traceparentOf(span)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    })
  )

  it.scoped("with an endpoint: the OpenTelemetry tracer replaces Effect's", () =>
    Effect.gen(function* () {
      const before = yield* Effect.tracer
      // Nothing listens there: nothing is sent before the layer closes, and a failed export is only logged.
      const within = yield* Effect.tracer.pipe(
        Effect.provide(tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" }))
      )
      expect(within).not.toBe(before)
    })
  )

  it.effect("an endpoint that is not an http(s) URL is a configuration error", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Effect.provide(Effect.void, tracing({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" }))
      )
      expect(exit._tag).toBe("Failure")
    })
  )
})

describe("traceparent", () => {
  const traceId = "4bf92f3577b34da6a3ce929d0e0e4736"
  const spanId = "00f067aa0ba902b7"

  it("a span out, the same span back in", () => {
    const span = Tracer.externalSpan({ traceId, spanId, sampled: true })
    const header = traceparentOf(span)
    expect(header).toBe(`00-${traceId}-${spanId}-01`)
    expect(Option.getOrThrow(parentFromTraceparent(header))).toMatchObject({ traceId, spanId, sampled: true })
    expect(traceparentOf(Tracer.externalSpan({ traceId, spanId, sampled: false }))).toBe(`00-${traceId}-${spanId}-00`)
    expect(Option.getOrThrow(parentFromTraceparent(`00-${traceId}-${spanId}-00`)).sampled).toBe(false)
  })

  it("anything else is no parent (a new trace), never an error", () => {
    for (const value of [
      undefined,
      42,
      "",
      `01-${traceId}-${spanId}-01`,
      `00-${traceId.toUpperCase()}-${spanId}-01`,
      `00-${"0".repeat(32)}-${spanId}-01`,
      `00-${traceId}-${"0".repeat(16)}-01`,
      `00-${traceId}-${spanId}-01-extra`
    ]) {
      expect(Option.isNone(parentFromTraceparent(value))).toBe(true)
    }
    // Ids that are not W3C ids (a test tracer's) are not written.
    expect(traceparentOf(Tracer.externalSpan({ traceId: "trace", spanId: "span1" }))).toBeUndefined()
  })
})

describe("trace context through the in-process queue", () => {
  it.scoped("a job's span continues the trace of the span that enqueued it", () =>
    Effect.gen(function* () {
      const queue = yield* makeInProcessJobQueue(Payload, { queueName: "traced" })
      const seen = yield* Deferred.make<Tracer.Span>()
      // The consumer's fibers start outside any span: only the job can bring the context.
      yield* queue.consume(() =>
        Effect.flatMap(Effect.currentSpan, (span) => Deferred.succeed(seen, span)).pipe(Effect.orDie)
      )
      const request = yield* Effect.withSpan(
        Effect.zipRight(queue.enqueue("job-1", payload(1)), Effect.orDie(Effect.currentSpan)),
        "request"
      )
      // The handler runs in `queue.job`, whose parent is the enqueue's span (a child of "request").
      const queueJob = yield* Deferred.await(seen)
      expect(queueJob.name).toBe("queue.job")
      expect(queueJob.traceId).toBe(request.traceId)
      const enqueue = Option.getOrThrow(queueJob.parent)
      expect(enqueue).toMatchObject({ _tag: "ExternalSpan", traceId: request.traceId })
      expect(enqueue.spanId).not.toBe(request.spanId)
    })
  )
})
