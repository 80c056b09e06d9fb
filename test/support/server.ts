/**
 * Starts the real api server in-process on a free port, with its configuration from a map and
 * the database layer of the caller's choice, and speaks real HTTP to it.
 */
import { HttpLayerRouter, HttpServer } from "@effect/platform"
import { Clock, ConfigProvider, Effect, Layer, Logger, LogLevel, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { AppConfig } from "../../src/core/config.ts"
import { type Db } from "../../src/core/db/db.ts"
import { Redis } from "../../src/core/redis.ts"
import type { TokenVerifier } from "../../src/core/auth/token-verifier.ts"
import { Erasure } from "../../src/core/erasure.ts"
import { NodeServerLive } from "../../src/core/http/server.ts"
import { ImageProcessor } from "../../src/core/image/image-processor.ts"
import { Storage } from "../../src/core/storage/storage.ts"
import { TestTokenVerifier } from "./auth.ts"
import type { AiStrategy } from "../../src/core/ai/strategy.ts"
import { ProgressBus } from "../../src/core/progress/progress-bus.ts"
import { RateLimiter } from "../../src/core/rate-limit/rate-limiter.ts"
import { SessionJobs } from "../../src/modules/sessions/sessions.jobs.ts"
import { AiLive } from "../../src/infrastructure.ts"
import { HttpRoutes } from "../../src/server.ts"
import { SessionsWorker } from "../../src/worker.ts"

export interface TestServerOptions<RE = never, RR = never, RS = never> {
  readonly config?: Record<string, string>
  readonly db: Layer.Layer<Db, unknown>
  readonly redis?: Layer.Layer<Redis, unknown, AppConfig>
  /** Token verification; default: the test key pair of test/support/auth.ts. */
  readonly auth?: Layer.Layer<TokenVerifier>
  /** Extra routes mounted beside the real ones (e.g. test-only probes). */
  readonly routes?: Layer.Layer<never, RE, RR>
  /**
   * Object storage; default: `localTestStorage()`, the local disk in a fresh temporary folder,
   * its URLs served by this very server. `Storage.s3(...)` for an S3-compatible server.
   */
  readonly storage?: Layer.Layer<Storage, unknown, AppConfig | HttpServer.HttpServer | RS>
  /**
   * The AI chain; default: the real one built from the test's configuration (no key: the local
   * provider; `OPENAI_API_KEY` + `OPENAI_BASE_URL` at a wire fake, and so on), ledger in the database.
   */
  readonly ai?: Layer.Layer<AiStrategy, unknown, Db | AppConfig>
  /**
   * Runs the sessions worker (the queue's consumer) in the same server, on the same queue and
   * progress bus, as `npm run dev` does; default false (sessions stay queued).
   */
  readonly consumer?: boolean
  /** The sessions queue; default: from the configuration (BullMQ with REDIS_URL, else in-process). */
  readonly jobs?: Layer.Layer<SessionJobs, never, AppConfig>
  /**
   * The rate limiter; default: from the configuration (Redis with the `redis` option, else memory).
   * Limits are off unless the test's configuration sets RATE_LIMIT_ENABLED=true.
   */
  readonly rateLimiter?: Layer.Layer<RateLimiter, unknown, AppConfig | Redis>
  /**
   * Where the server's logs go; default: nowhere. A test about what is logged gives a capture
   * (`captureLogs().layer` of test/fixtures/queue-contract.ts).
   */
  readonly logs?: Layer.Layer<never>
}

export const testConfig = (overrides: Record<string, string> = {}) =>
  Layer.setConfigProvider(
    ConfigProvider.fromMap(
      new Map(
        Object.entries({
          NODE_ENV: "test",
          PORT: "0",
          HOST: "127.0.0.1",
          // Suites make many requests from one address and user; rate-limit tests turn limits on.
          RATE_LIMIT_ENABLED: "false",
          // The suites share one database, each with its own queue: a reconciler would find the other
          // files' sessions without a job in its queue and run them (the reconciler's test turns it on).
          SESSION_RECONCILE_SECONDS: "0",
          ...overrides
        })
      )
    )
  )

/** The base URL of the server built by `testServer`. */
export const baseUrl = HttpServer.HttpServer.pipe(
  Effect.map((server) =>
    server.address._tag === "TcpAddress" ? `http://127.0.0.1:${server.address.port}` : "http://unix-socket"
  )
)

/**
 * Local storage for a test server: files under `root` (default: a temporary folder removed with
 * the server), URLs signed for the server's own address with UPLOAD_SIGNING_SECRET when the
 * test's configuration sets it (a random secret otherwise).
 */
export const localTestStorage = (options: { readonly root?: string } = {}) =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const root =
        options.root ??
        (yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "wingmate-storage-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        ))
      const config = yield* AppConfig
      return Storage.local({
        root,
        publicBaseUrl: yield* baseUrl,
        secret: Option.match(config.storage.signingSecret, {
          onNone: () => randomBytes(32),
          onSome: (secret) => Buffer.from(Redacted.value(secret))
        })
      })
    })
  )

export const testServer = <RE = never, RR = never, RS = never>(options: TestServerOptions<RE, RR, RS>) =>
  Layer.mergeAll(
    HttpLayerRouter.serve(options.routes ? Layer.mergeAll(HttpRoutes, options.routes) : HttpRoutes, {
      disableLogger: true
    }),
    options.consumer === true ? SessionsWorker : Layer.empty
  ).pipe(
    // Storage may need the server's address (the local form signs URLs for it).
    Layer.provide(options.storage ?? localTestStorage()),
    Layer.provideMerge(NodeServerLive),
    Layer.provide(ImageProcessor.layer),
    Layer.provide(
      Layer.mergeAll(ProgressBus.layer, options.jobs ?? SessionJobs.layer, options.rateLimiter ?? RateLimiter.layer)
    ),
    Layer.provide(options.ai ?? AiLive),
    Layer.provide(options.db),
    Layer.provide(options.redis ?? Redis.none),
    Layer.provide(options.auth ?? TestTokenVerifier),
    Layer.provide(Erasure.Default),
    Layer.provideMerge(AppConfig.Default),
    Layer.provide(options.logs ?? Logger.minimumLogLevel(LogLevel.None)),
    Layer.provide(testConfig(options.config)),
    // The server keeps real time even where @effect/vitest gives the test a TestClock.
    Layer.provide(Layer.setClock(Clock.make()))
  )
