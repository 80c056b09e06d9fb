/**
 * Starts the real api server in-process on a free port, with its configuration from a map and
 * the database layer of the caller's choice, and speaks real HTTP to it.
 */
import { HttpServer } from "@effect/platform"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import { AppConfig } from "../../src/core/config.ts"
import { type Db } from "../../src/core/db/db.ts"
import { Redis } from "../../src/core/redis.ts"
import type { TokenVerifier } from "../../src/core/auth/token-verifier.ts"
import { Erasure } from "../../src/core/erasure.ts"
import { TestTokenVerifier } from "./auth.ts"
import { HttpRoutes, serveRoutes } from "../../src/server.ts"

export interface TestServerOptions<RE = never, RR = never> {
  readonly config?: Record<string, string>
  readonly db: Layer.Layer<Db, unknown>
  readonly redis?: Layer.Layer<Redis, unknown, AppConfig>
  /** Token verification; default: the test key pair of test/support/auth.ts. */
  readonly auth?: Layer.Layer<TokenVerifier>
  /** Extra routes mounted beside the real ones (e.g. test-only probes). */
  readonly routes?: Layer.Layer<never, RE, RR>
}

export const testConfig = (overrides: Record<string, string> = {}) =>
  Layer.setConfigProvider(
    ConfigProvider.fromMap(new Map(Object.entries({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", ...overrides })))
  )

export const testServer = <RE = never, RR = never>(options: TestServerOptions<RE, RR>) =>
  serveRoutes(options.routes ? Layer.mergeAll(HttpRoutes, options.routes) : HttpRoutes).pipe(
    Layer.provide(options.db),
    Layer.provide(options.redis ?? Redis.none),
    Layer.provide(options.auth ?? TestTokenVerifier),
    Layer.provide(Erasure.Default),
    Layer.provideMerge(AppConfig.Default),
    Layer.provide(Logger.minimumLogLevel(LogLevel.None)),
    Layer.provide(testConfig(options.config))
  )

/** The base URL of the server built by `testServer`. */
export const baseUrl = HttpServer.HttpServer.pipe(
  Effect.map((server) =>
    server.address._tag === "TcpAddress" ? `http://127.0.0.1:${server.address.port}` : "http://unix-socket"
  )
)
