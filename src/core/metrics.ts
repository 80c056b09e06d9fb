/**
 * Metrics: Effect `Metric`s recorded where things happen (requests, jobs, AI calls, sockets, rate
 * limits), and a few gauges read when scraped (queue depth, circuit breakers). `GET /metrics`
 * (the api; the worker's health port) answers them in the Prometheus text format: Effect's
 * registry read through @effect/opentelemetry's metric producer, written by OpenTelemetry's
 * Prometheus serializer. Both are loaded at the first scrape: a process nobody scrapes pays nothing.
 *
 * Labels are bounded: routes by their pattern (`/api/v1/sessions/:id`), never the raw URL; no
 * user, session or job id anywhere. The names and labels are listed in the README (Metrics).
 */
import { Context, Effect, Layer, Metric, MetricBoundaries, MetricLabel, Option, Ref } from "effect"
import type { CircuitView } from "./ai/breaker.ts"
import type { LedgerEntry } from "./ai/ledger.ts"
import type { ProviderId } from "./ai/provider.ts"
import type { JobCounts } from "./queue/model.ts"
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks"

const seconds = (ms: number) => ms / 1_000

/** Request and job durations: 5 ms to 2 min. */
const durationBuckets = MetricBoundaries.fromIterable([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120
])

export const httpRequestDuration = Metric.histogram(
  "http_server_request_duration_seconds",
  durationBuckets,
  "HTTP requests by method, route pattern and status (the operator routes excluded)"
)

export const queueJobs = Metric.gauge("wingmate_queue_jobs", {
  description: "Jobs in the queue by state (waiting, active, delayed, failed), read when scraped"
})
export const queueJobWait = Metric.histogram(
  "wingmate_queue_job_wait_seconds",
  durationBuckets,
  "From enqueue to the start of a job's first attempt"
)
export const queueJobDuration = Metric.histogram(
  "wingmate_queue_job_duration_seconds",
  durationBuckets,
  "One attempt of a job, by outcome (completed, retrying, failed, cancelled, handed-back, lock-lost)"
)
export const sessionPhaseDuration = Metric.histogram(
  "wingmate_session_phase_duration_seconds",
  durationBuckets,
  "One phase of a session's pipeline (normalise, ocr, transcript, suggestions), by outcome (ok, error)"
)

export const sessionsReconciled = Metric.counter("wingmate_sessions_reconciled", {
  incremental: true,
  description:
    "Sessions the reconciler acted on, by action: requeued (their job was gone) or failed (the queue ended their job without them)"
})

export const aiCalls = Metric.counter("wingmate_ai_calls", {
  incremental: true,
  description: "Provider attempts by provider, model, feature and outcome (ok, timeout, error, skipped, cancelled)"
})
export const aiTokens = Metric.counter("wingmate_ai_tokens", {
  incremental: true,
  description: "Tokens consumed by provider attempts, by provider, model and direction (input, output)"
})
export const aiCost = Metric.counter("wingmate_ai_cost_usd", {
  incremental: true,
  description: "What provider attempts cost at list prices (USD), by provider and model"
})
export const aiCircuitState = Metric.gauge("wingmate_ai_circuit_state", {
  description: "Circuit breaker per provider: 1 on the current state (closed, open, half-open), 0 on the others"
})

export const wsConnections = Metric.gauge("wingmate_ws_connections", {
  description: "Open WebSocket connections on this process"
})
export const wsSubscriptions = Metric.gauge("wingmate_ws_subscriptions", {
  description: "Sessions followed over WebSocket connections on this process"
})

export const rateLimitRefusals = Metric.counter("wingmate_rate_limit_refusals", {
  incremental: true,
  description: "Calls refused by a rate limit, by limit name (rest-ip, rest-user, ws-message-user, …)"
})

// The process itself, read when scraped, under the names stock Node.js dashboards use (prom-client's):
// the RSS against the heap tells V8 sizing its heap from a leak (bench/README.md, Soak, "Memory").
export const processResidentMemory = Metric.gauge("process_resident_memory_bytes", {
  description: "Resident memory size of this process in bytes"
})
export const heapSizeUsed = Metric.gauge("nodejs_heap_size_used_bytes", {
  description: "V8 heap used in bytes"
})
export const heapSizeTotal = Metric.gauge("nodejs_heap_size_total_bytes", {
  description: "V8 heap committed in bytes"
})
export const externalMemory = Metric.gauge("nodejs_external_memory_bytes", {
  description: "Memory of C++ objects bound to JavaScript objects (Buffers included) in bytes"
})
export const processCpuSeconds = Metric.counter("process_cpu_seconds", {
  incremental: true,
  description: "User and system CPU time this process has spent, in seconds"
})
export const eventLoopLag = Metric.gauge("nodejs_eventloop_lag_seconds", {
  description: "Event loop delay since the previous scrape, by quantile (p50, p99, max)"
})

/** `metric` with these labels (data-first: the piped form loses the metric's input type). */
const labelled = <Type, In, Out>(
  metric: Metric.Metric<Type, In, Out>,
  labels: Readonly<Record<string, string>>
): Metric.Metric<Type, In, Out> =>
  Metric.taggedWithLabels(
    metric,
    Object.entries(labels).map(([key, value]) => MetricLabel.make(key, value))
  )

/** Routes that are not the product's traffic: not timed, not rate limited. */
export const isOperatorRoute = (route: string): boolean =>
  route === "/metrics" || route === "/admin/queues" || route.startsWith("/admin/queues/")

export const recordHttpRequest = (method: string, route: string, status: number, durationMs: number) =>
  isOperatorRoute(route)
    ? Effect.void
    : Metric.update(labelled(httpRequestDuration, { method, route, status: String(status) }), seconds(durationMs))

export const recordJobAttempt = (queue: string, outcome: string, durationMs: number) =>
  Metric.update(labelled(queueJobDuration, { queue, outcome }), seconds(durationMs))

export const recordJobWait = (queue: string, waitMs: number) =>
  Metric.update(labelled(queueJobWait, { queue }), seconds(Math.max(0, waitMs)))

export const recordSessionPhase = (phase: string, outcome: "ok" | "error", durationMs: number) =>
  Metric.update(labelled(sessionPhaseDuration, { phase, outcome }), seconds(durationMs))

export const recordSessionsReconciled = (action: "requeued" | "failed", count: number) =>
  count === 0 ? Effect.void : Metric.incrementBy(labelled(sessionsReconciled, { action }), count)

/** One ledger entry as metrics: the attempt, its tokens and its cost (micro-units → USD). */
export const recordAiCall = (entry: LedgerEntry) => {
  const model = { provider: entry.provider, model: entry.model }
  return Effect.all(
    [
      Metric.increment(labelled(aiCalls, { ...model, feature: entry.feature, outcome: entry.outcome })),
      Metric.incrementBy(labelled(aiTokens, { ...model, direction: "input" }), entry.inputTokens),
      Metric.incrementBy(labelled(aiTokens, { ...model, direction: "output" }), entry.outputTokens),
      Metric.incrementBy(labelled(aiCost, model), entry.costMicros / 1_000_000)
    ],
    { discard: true }
  )
}

export const recordRateLimitRefusal = (limit: string) => Metric.increment(labelled(rateLimitRefusals, { limit }))

/** Counts `effect` in `gauge` while it runs (a connection, a subscription). */
export const trackedIn =
  (gauge: Metric.Metric.Gauge<number>) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.acquireUseRelease(
      Metric.modify(gauge, 1),
      () => effect,
      () => Metric.modify(gauge, -1)
    )

const CIRCUIT_STATES: ReadonlyArray<CircuitView> = ["closed", "open", "half-open"]

/**
 * What the gauges read at scrape time ask of the process: its queues' counts (when it has a
 * queue) and its AI chain's circuits (when it has one).
 */
export interface ScrapeSources {
  readonly queues: ReadonlyArray<{
    readonly name: string
    readonly counts: Effect.Effect<JobCounts, unknown>
  }>
  readonly circuits: Option.Option<{
    readonly providers: ReadonlyArray<{ readonly id: ProviderId }>
    readonly circuit: (provider: ProviderId) => Effect.Effect<CircuitView>
  }>
}

/** What the process says of itself; the event loop's histogram starts again after each scrape. */
const refreshProcessGauges = (loop: IntervalHistogram, cpuCounted: Ref.Ref<number>) =>
  Effect.sync(() => {
    const memory = process.memoryUsage()
    const { user, system } = process.cpuUsage()
    const lag = { p50: loop.percentile(50), p99: loop.percentile(99), max: loop.max }
    loop.reset()
    return { memory, cpuSeconds: (user + system) / 1e6, lag }
  }).pipe(
    Effect.flatMap(({ memory, cpuSeconds, lag }) =>
      Effect.all(
        [
          Metric.set(processResidentMemory, memory.rss),
          Metric.set(heapSizeUsed, memory.heapUsed),
          Metric.set(heapSizeTotal, memory.heapTotal),
          Metric.set(externalMemory, memory.external),
          // Two scrapes at once count each second once: the counter only moves forward.
          Effect.flatMap(
            Ref.modify(cpuCounted, (counted) => [Math.max(0, cpuSeconds - counted), Math.max(counted, cpuSeconds)]),
            (delta) => Metric.incrementBy(processCpuSeconds, delta)
          ),
          // Nanoseconds; NaN until the loop has been sampled once (a scrape right after the start).
          ...Object.entries(lag).map(([quantile, ns]) =>
            Metric.set(labelled(eventLoopLag, { quantile }), Number.isFinite(ns) ? ns / 1e9 : 0)
          )
        ],
        { discard: true }
      )
    )
  )

const refreshGauges = (sources: ScrapeSources) =>
  Effect.all(
    [
      Effect.forEach(
        sources.queues,
        (queue) =>
          Effect.matchEffect(queue.counts, {
            // Redis unreachable: the depth is unknown, not zero; the last values stay (and the log says why).
            onFailure: (error) => Effect.logWarning("Metrics: queue counts not read", error),
            onSuccess: (counts) =>
              Effect.forEach(
                Object.entries(counts),
                ([state, count]) => Metric.set(labelled(queueJobs, { queue: queue.name, state }), count),
                { discard: true }
              )
          }),
        { discard: true }
      ),
      Option.match(sources.circuits, {
        onNone: () => Effect.void,
        onSome: (chain) =>
          Effect.forEach(
            chain.providers,
            (provider) =>
              Effect.flatMap(chain.circuit(provider.id), (current) =>
                Effect.forEach(
                  CIRCUIT_STATES,
                  (state) =>
                    Metric.set(labelled(aiCircuitState, { provider: provider.id, state }), state === current ? 1 : 0),
                  { discard: true }
                )
              ),
            { discard: true }
          )
      })
    ],
    { discard: true, concurrency: "unbounded" }
  )

/** The Prometheus text exposition's media type (`text/plain` is read as version 0.0.4), as the api's /metrics says it. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain"

export interface MetricsShape {
  /** Every metric of this process in the Prometheus text format, the scrape-time gauges read first. */
  readonly scrape: Effect.Effect<string>
}

export class Metrics extends Context.Tag("Metrics")<Metrics, MetricsShape>() {
  /** `serviceName` becomes the `target_info` series' `service_name`. */
  static readonly make = (serviceName: string, sources: ScrapeSources) =>
    Effect.gen(function* () {
      const exporter = yield* Effect.cached(
        Effect.promise(async () => {
          const [{ makeProducer }, { layer: resourceLayer }, { PrometheusSerializer }] = await Promise.all([
            import("@effect/opentelemetry/Metrics"),
            import("@effect/opentelemetry/Resource"),
            import("@opentelemetry/exporter-prometheus")
          ])
          return { makeProducer, resourceLayer, serializer: new PrometheusSerializer() }
        }).pipe(
          Effect.flatMap(({ makeProducer, resourceLayer, serializer }) =>
            Effect.map(Effect.provide(makeProducer, resourceLayer({ serviceName })), (producer) => ({
              producer,
              serializer
            }))
          )
        )
      )
      // The event loop's delay, sampled every 20 ms for as long as the service lives.
      const loop = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const histogram = monitorEventLoopDelay({ resolution: 20 })
          histogram.enable()
          return histogram
        }),
        (histogram) => Effect.sync(() => histogram.disable())
      )
      const cpuCounted = yield* Ref.make(0)
      const scrape = Effect.gen(function* () {
        yield* refreshGauges(sources)
        yield* refreshProcessGauges(loop, cpuCounted)
        const { producer, serializer } = yield* exporter
        const collected = yield* Effect.promise(() => producer.collect())
        return serializer.serialize(collected.resourceMetrics)
      })
      return Metrics.of({ scrape })
    })

  static readonly layer = (serviceName: string, sources: ScrapeSources): Layer.Layer<Metrics> =>
    Layer.scoped(Metrics, Metrics.make(serviceName, sources))
}
