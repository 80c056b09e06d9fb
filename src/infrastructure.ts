/**
 * What the api and the worker both run on: the AI chain, database, Redis, the erasure registry,
 * object storage, images, the progress bus, the sessions queue and rate limits, then tracing,
 * logging and the configuration. Each process adds its own (server.ts: token verification and the
 * routes; worker.ts: OCR and the consumer).
 */
import { Layer } from "effect"
import { AppConfig } from "./core/config.ts"
import { AiStrategyLive } from "./core/ai/layer.ts"
import { AiLedgerDb } from "./core/ai/ledger-db.ts"
import { withLedgerMetrics } from "./core/ai/ledger.ts"
import { Db } from "./core/db/db.ts"
import { Erasure } from "./core/erasure.ts"
import { ImageProcessor } from "./core/image/image-processor.ts"
import { LoggingLive } from "./core/logging.ts"
import { ProgressBus } from "./core/progress/progress-bus.ts"
import { RateLimiter } from "./core/rate-limit/rate-limiter.ts"
import { Redis } from "./core/redis.ts"
import { Storage } from "./core/storage/storage.ts"
import { type ProcessRole, TracingLive } from "./core/tracing.ts"
import { SessionJobs } from "./modules/sessions/sessions.jobs.ts"

/** The AI chain from configuration, with its cost ledger in the database. */
export const AiLive = AiStrategyLive.pipe(Layer.provide(withLedgerMetrics(AiLedgerDb)))

/**
 * What the modules run on. Object storage's local form also serves its own URLs through
 * `LocalStorageRoutes` (the api's).
 */
export const Infrastructure = Layer.mergeAll(ProgressBus.layer, SessionJobs.layer, RateLimiter.layer).pipe(
  Layer.provideMerge(
    AiLive.pipe(
      Layer.provideMerge(Layer.mergeAll(Db.layer, Redis.layer, Erasure.Default, Storage.layer, ImageProcessor.layer))
    )
  )
)

/** A process role's layers on the infrastructure, its tracing, logging and configuration. */
export const onInfrastructure =
  (role: ProcessRole) =>
  <A, E, R>(process: Layer.Layer<A, E, R>) =>
    process.pipe(
      Layer.provide(Infrastructure),
      Layer.provide(TracingLive(role)),
      Layer.provide(LoggingLive),
      Layer.provide(AppConfig.Default)
    )
