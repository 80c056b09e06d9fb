/**
 * Tracing. Effect's spans (a server span per request, `queue.job`, `sessions.job`, `sessions.phase`,
 * `ai.attempt`, …) are exported over OTLP/HTTP (JSON) when OTEL_EXPORTER_OTLP_ENDPOINT is set.
 * Unset, OpenTelemetry is not even loaded and the platform's request spans are off (nobody would
 * read them, and each costs its attributes); Effect's built-in tracer keeps the other spans.
 *
 * Also: a span as a W3C `traceparent`, so that a trace crosses the job queue into the worker
 * process; and the scrubbing of what the platform's request span would otherwise export.
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Context, Effect, Layer, Option, Tracer } from "effect"
import { AppConfig } from "./config.ts"

/** Which process this is: its service name is `wingmate-<role>` unless OTEL_SERVICE_NAME says otherwise. */
export type ProcessRole = "api" | "worker" | "dev"

export const serviceNameOf = (role: ProcessRole, configured: Option.Option<string>): string =>
  Option.getOrElse(configured, () => `wingmate-${role}`)

/**
 * The process's tracer: the OpenTelemetry SDK (`NodeSdk`) with a batching OTLP/HTTP exporter
 * when an endpoint is configured (spans still queued are flushed when the layer closes, within
 * 3 s); otherwise only the request spans switched off. Provide it under everything that makes spans.
 */
export const TracingLive = (role: ProcessRole): Layer.Layer<never, never, AppConfig> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      if (Option.isNone(config.tracing.endpoint)) {
        return Layer.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, () => true)
      }
      const endpoint = config.tracing.endpoint.value
      const serviceName = serviceNameOf(role, config.tracing.serviceName)
      // Loaded only when exporting: a process without a collector pays nothing for OpenTelemetry.
      const [{ NodeSdk }, { BatchSpanProcessor }, { OTLPTraceExporter }] = yield* Effect.promise(() =>
        Promise.all([
          import("@effect/opentelemetry"),
          import("@opentelemetry/sdk-trace-base"),
          import("@opentelemetry/exporter-trace-otlp-http")
        ])
      )
      // The host only: an endpoint URL may carry credentials.
      yield* Effect.logInfo(`Tracing: spans exported over OTLP/HTTP to ${new URL(endpoint).host} as "${serviceName}"`)
      const sdk = NodeSdk.layer(() => ({
        resource: { serviceName },
        // Batch size and delay follow the standard OTEL_BSP_* variables; headers OTEL_EXPORTER_OTLP_HEADERS.
        spanProcessor: new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint}/v1/traces` }))
      }))
      // Only the tracer it installs matters to the rest of the process, not its Resource service.
      return Layer.map(sdk, () => Context.empty())
    })
  )

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const ZERO_TRACE = "0".repeat(32)
const ZERO_SPAN = "0".repeat(16)

/** A span as a W3C `traceparent` (version 00); undefined when its ids are not W3C ids. */
export const traceparentOf = (span: Tracer.AnySpan): string | undefined => {
  const value = `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  return TRACEPARENT.test(value) && span.traceId !== ZERO_TRACE && span.spanId !== ZERO_SPAN ? value : undefined
}

/** The span a `traceparent` names, as a parent for spans of this process; none if it is not a valid one. */
export const parentFromTraceparent = (value: unknown): Option.Option<Tracer.ExternalSpan> => {
  const match = typeof value === "string" ? TRACEPARENT.exec(value) : null
  if (match === null) return Option.none()
  const [, traceId = ZERO_TRACE, spanId = ZERO_SPAN, flags = "00"] = match
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return Option.none()
  return Option.some(Tracer.externalSpan({ traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 }))
}

/** The current span's `traceparent`, if the caller runs in a span. */
export const currentTraceparent: Effect.Effect<string | undefined> = Effect.currentParentSpan.pipe(
  Effect.map(traceparentOf),
  Effect.orElseSucceed(() => undefined)
)

/** Request headers whose values may show on the request span; any other is replaced by `<redacted>`. */
const SHOWN_HEADERS = new Set([
  "accept",
  "accept-encoding",
  "connection",
  "content-encoding",
  "content-length",
  "content-type",
  "host",
  "last-event-id",
  "svix-id",
  "svix-timestamp",
  "user-agent",
  "x-request-id"
])

/**
 * The platform's server span records the full URL, its query and every request header but
 * `authorization` and cookies. Queries may carry secrets (the local storage's URL signatures) and
 * headers credentials (webhook signatures): on the current request span, query values and unknown
 * headers are replaced before anything is exported. The request id joins it, to find the request's
 * log line from its trace. Call it inside the request's span.
 */
export const annotateRequestSpan = (
  request: HttpServerRequest.HttpServerRequest,
  requestId: string
): Effect.Effect<void> =>
  Effect.currentSpan.pipe(
    Effect.flatMap((span) =>
      Effect.sync(() => {
        if (span.kind !== "server") return
        span.attribute("http.request.id", requestId)
        const full = span.attributes.get("url.full")
        if (typeof full === "string" && URL.canParse(full)) {
          const url = new URL(full)
          if (url.search !== "") {
            span.attribute("url.query", [...new Set(url.searchParams.keys())].join("&"))
            url.search = ""
            span.attribute("url.full", url.toString())
          }
        }
        for (const name of Object.keys(request.headers)) {
          const key = `http.request.header.${name}`
          if (!SHOWN_HEADERS.has(name) && span.attributes.has(key)) span.attribute(key, "<redacted>")
        }
      })
    ),
    Effect.ignore
  )
