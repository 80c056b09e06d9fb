/**
 * The `Metrics` service of a process with the sessions queue and the AI chain (the api and the
 * worker): the queue's depth and the circuits are read when scraped. Apart from the HttpApi group
 * (metrics.http.ts), so that the worker does not load the API's definition (issue #17).
 */
import { Effect, Layer, Option } from "effect"
import { AiStrategy } from "../../core/ai/strategy.ts"
import { AppConfig } from "../../core/config.ts"
import { Metrics } from "../../core/metrics.ts"
import { serviceNameOf, type ProcessRole } from "../../core/tracing.ts"
import { SessionJobs } from "../sessions/sessions.jobs.ts"

/** The process's metrics, with the sessions queue and the AI chain's circuits as scrape-time gauges. */
export const MetricsLive = (role: ProcessRole): Layer.Layer<Metrics, never, AppConfig | SessionJobs | AiStrategy> =>
  Layer.scoped(
    Metrics,
    Effect.gen(function* () {
      const config = yield* AppConfig
      const jobs = yield* SessionJobs
      const strategy = yield* AiStrategy
      return yield* Metrics.make(serviceNameOf(role, config.tracing.serviceName), {
        queues: [{ name: jobs.name, counts: jobs.counts }],
        circuits: Option.some(strategy)
      })
    })
  )
