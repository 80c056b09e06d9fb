import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, LogLevel, Option, Redacted } from "effect"
import { AppConfig, describeConfigError } from "../../../src/core/config.ts"

const load = (env: Record<string, string>) =>
  AppConfig.pipe(
    Effect.provide(AppConfig.Default),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
    Effect.either
  )

const productionBasics = {
  NODE_ENV: "production",
  DATABASE_URL: "postgresql://h/db",
  CLERK_JWT_KEY: "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
  CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdA=="
}

describe("AppConfig", () => {
  it.effect("defaults describe the embedded development setup", () =>
    Effect.gen(function* () {
      const config = yield* Effect.flatten(load({}))
      expect(config.nodeEnv).toBe("development")
      expect(config.port).toBe(3000)
      expect(Option.isNone(config.databaseUrl)).toBe(true)
      expect(Option.isNone(config.redisUrl)).toBe(true)
      expect(config.logFormat).toBe("pretty")
      expect(config.logLevel).toEqual(LogLevel.Info)
      expect(config.maxBodyBytes).toBe(10 * 1024 * 1024)
      expect(config.corsOrigins).toEqual([])
    })
  )

  it.effect("secrets stay redacted and an empty value counts as unset", () =>
    Effect.gen(function* () {
      const config = yield* Effect.flatten(load({ DATABASE_URL: "postgresql://u:pw@h/db", REDIS_URL: " " }))
      expect(Option.map(config.databaseUrl, Redacted.value)).toEqual(Option.some("postgresql://u:pw@h/db"))
      expect(String(Option.getOrThrow(config.databaseUrl))).not.toContain("pw")
      expect(Option.isNone(config.redisUrl)).toBe(true)
    })
  )

  it.effect("production logs JSON and CORS origins are a trimmed list", () =>
    Effect.gen(function* () {
      const config = yield* Effect.flatten(
        load({
          ...productionBasics,
          CORS_ORIGINS: "https://a.test, https://b.test"
        })
      )
      expect(config.logFormat).toBe("json")
      expect(config.corsOrigins).toEqual(["https://a.test", "https://b.test"])
    })
  )

  it.effect("every malformed variable is reported on its own line, by name", () =>
    Effect.gen(function* () {
      const result = yield* load({ PORT: "abc", MAX_BODY_BYTES: "-5", NODE_ENV: "staging" })
      expect(Either.isLeft(result)).toBe(true)
      if (Either.isRight(result)) return
      const lines = describeConfigError(result.left)
      expect(lines).toHaveLength(3)
      expect(lines.some((line) => line.startsWith("PORT: invalid value"))).toBe(true)
      expect(lines.some((line) => line.startsWith("MAX_BODY_BYTES: invalid value"))).toBe(true)
      expect(lines.some((line) => line.startsWith("NODE_ENV: invalid value"))).toBe(true)
    })
  )

  it.effect("production names everything it cannot run without, and refuses dev auth", () =>
    Effect.gen(function* () {
      const refused = yield* load({ NODE_ENV: "production" })
      expect(Either.isLeft(refused)).toBe(true)
      if (Either.isLeft(refused)) {
        expect(describeConfigError(refused.left)).toEqual([
          "DATABASE_URL: missing: Required in production (an embedded database is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)",
          "CLERK_JWT_KEY: missing: Required in production, or CLERK_SECRET_KEY (dev auth is refused)",
          "CLERK_WEBHOOK_SIGNING_SECRET: missing: Required in production (user sync)"
        ])
      }
      const embedded = yield* load({ ...productionBasics, DATABASE_URL: "", ALLOW_EMBEDDED_IN_PRODUCTION: "true" })
      expect(Either.isRight(embedded)).toBe(true)
      const complete = yield* Effect.flatten(load(productionBasics))
      expect(complete.devAuth).toBe(false)
    })
  )

  it.effect("dev auth is on only without Clerk keys outside production; a one-line PEM gets its newlines back", () =>
    Effect.gen(function* () {
      expect((yield* Effect.flatten(load({}))).devAuth).toBe(true)
      const withKey = yield* Effect.flatten(
        load({ CLERK_JWT_KEY: "-----BEGIN PUBLIC KEY-----\\nABC\\n-----END PUBLIC KEY-----" })
      )
      expect(withKey.devAuth).toBe(false)
      expect(Option.getOrThrow(withKey.clerkJwtKey)).toBe("-----BEGIN PUBLIC KEY-----\nABC\n-----END PUBLIC KEY-----")
      const withSecret = yield* Effect.flatten(load({ CLERK_SECRET_KEY: "sk_test_x", CLERK_AUTHORIZED_PARTIES: "a,b" }))
      expect(withSecret.devAuth).toBe(false)
      expect(withSecret.clerkAuthorizedParties).toEqual(["a", "b"])
    })
  )
})
