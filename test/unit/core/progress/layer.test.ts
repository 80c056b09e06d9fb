/** The layer the processes use: memory without REDIS_URL (refused in production), and its variables. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Logger, LogLevel } from "effect"
import { AppConfig, describeConfigError } from "../../../../src/core/config.ts"
import { ProgressBus } from "../../../../src/core/progress/progress-bus.ts"
import { Redis } from "../../../../src/core/redis.ts"

const busWith = (env: Record<string, string>) =>
  ProgressBus.pipe(
    Effect.map((bus) => bus.kind),
    Effect.provide(
      ProgressBus.layer.pipe(
        Layer.provide(Layer.merge(AppConfig.Default, Redis.none)),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))),
        Layer.provide(Logger.minimumLogLevel(LogLevel.None))
      )
    ),
    Effect.either
  )

const production = {
  NODE_ENV: "production",
  DATABASE_URL: "postgresql://h/db",
  CLERK_JWT_KEY: "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
  CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdA==",
  S3_BUCKET: "wingmate-test"
}

describe("ProgressBus.layer", () => {
  it.scoped("without Redis: the in-memory bus outside production; production refuses it unless allowed", () =>
    Effect.gen(function* () {
      expect(yield* busWith({})).toEqual(Either.right("memory"))
      const refused = yield* busWith(production)
      expect(Either.isLeft(refused) && describeConfigError(refused.left)).toEqual([
        "REDIS_URL: missing: Required in production: progress reaches other processes through Redis (an in-process bus is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
      ])
      expect(yield* busWith({ ...production, ALLOW_EMBEDDED_IN_PRODUCTION: "true" })).toEqual(Either.right("memory"))
    })
  )

  it.scoped("PROGRESS_REPLAY_LIMIT and PROGRESS_TTL_SECONDS are validated", () =>
    Effect.gen(function* () {
      const bad = yield* busWith({ PROGRESS_REPLAY_LIMIT: "0", PROGRESS_TTL_SECONDS: "-5" })
      expect(Either.isLeft(bad) && describeConfigError(bad.left)).toEqual([
        "PROGRESS_REPLAY_LIMIT: invalid value: Expected an integer from 1 to 100000",
        "PROGRESS_TTL_SECONDS: invalid value: Expected a positive integer"
      ])
      expect(yield* busWith({ PROGRESS_REPLAY_LIMIT: "50", PROGRESS_TTL_SECONDS: "60" })).toEqual(
        Either.right("memory")
      )
    })
  )
})
