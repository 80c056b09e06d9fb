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
  CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdA==",
  S3_BUCKET: "wingmate-uploads"
}

const problemsOf = (env: Record<string, string>) =>
  Effect.map(load(env), Either.match({ onLeft: describeConfigError, onRight: () => [] }))

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

  it.effect("LOG_LEVEL takes the README's names (Warning, None) as well as Effect's labels, in any case", () =>
    Effect.gen(function* () {
      const levelOf = (value: string) =>
        Effect.map(Effect.flatten(load({ LOG_LEVEL: value })), (config) => config.logLevel)
      expect(yield* levelOf("Warning")).toEqual(LogLevel.Warning)
      expect(yield* levelOf("warn")).toEqual(LogLevel.Warning)
      expect(yield* levelOf("None")).toEqual(LogLevel.None)
      expect(yield* levelOf("off")).toEqual(LogLevel.None)
      expect(yield* levelOf("DEBUG")).toEqual(LogLevel.Debug)
      expect(yield* levelOf("All")).toEqual(LogLevel.All)
      expect(yield* problemsOf({ LOG_LEVEL: "loud" })).toEqual([
        "LOG_LEVEL: invalid value: Expected one of Trace, Debug, Info, Warning, Error, Fatal, None, All"
      ])
    })
  )

  it.effect("webhook deliveries are kept 3 days by default, at least 2 (past Svix's retries, ~27.5 h)", () =>
    Effect.gen(function* () {
      const retentionOf = (env: Record<string, string>) =>
        Effect.map(Effect.flatten(load(env)), (config) => config.webhookDeliveryRetentionSeconds)
      expect(yield* retentionOf({})).toBe(3 * 86_400)
      expect(yield* retentionOf({ WEBHOOK_DELIVERY_RETENTION_SECONDS: "172800" })).toBe(2 * 86_400)
      expect(yield* problemsOf({ WEBHOOK_DELIVERY_RETENTION_SECONDS: "86400" })).toEqual([
        "WEBHOOK_DELIVERY_RETENTION_SECONDS: invalid value: Expected an integer from 172800 to 31536000"
      ])
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
      // The interactive reference is off in production unless asked for; on elsewhere unless refused.
      expect(config.docsEnabled).toBe(false)
      expect((yield* Effect.flatten(load({ ...productionBasics, API_DOCS_ENABLED: "true" }))).docsEnabled).toBe(true)
      expect((yield* Effect.flatten(load({}))).docsEnabled).toBe(true)
      expect((yield* Effect.flatten(load({ API_DOCS_ENABLED: "false" }))).docsEnabled).toBe(false)
    })
  )

  it.effect("HTTP timeouts have sane defaults; a request timeout shorter than the headers' is refused", () =>
    Effect.gen(function* () {
      const config = yield* Effect.flatten(load({}))
      expect(config.http).toEqual({
        headersTimeoutMs: 10_000,
        requestTimeoutMs: 60_000,
        keepAliveTimeoutMs: 5_000,
        maxConnectionsPerAddress: 256
      })
      expect(yield* problemsOf({ HTTP_HEADERS_TIMEOUT_MS: "20000", HTTP_REQUEST_TIMEOUT_MS: "5000" })).toEqual([
        "HTTP_REQUEST_TIMEOUT_MS: invalid value: Must be at least HTTP_HEADERS_TIMEOUT_MS (20000): the request includes its headers"
      ])
    })
  )

  it.effect(
    "daily limits: sessions 50 and regenerations 100 by default; 1 to 10000, each named when out of range",
    () =>
      Effect.gen(function* () {
        const config = yield* Effect.flatten(load({}))
        expect(config.sessions.dailyLimit).toBe(50)
        expect(config.sessions.regenerationsDailyLimit).toBe(100)
        const set = yield* Effect.flatten(load({ SESSIONS_DAILY_LIMIT: "3", REGENERATIONS_DAILY_LIMIT: "7" }))
        expect(set.sessions).toMatchObject({ dailyLimit: 3, regenerationsDailyLimit: 7 })
        const lines = yield* problemsOf({ SESSIONS_DAILY_LIMIT: "0", REGENERATIONS_DAILY_LIMIT: "10001" })
        expect(lines.map((line) => line.split(":")[0]).sort()).toEqual([
          "REGENERATIONS_DAILY_LIMIT",
          "SESSIONS_DAILY_LIMIT"
        ])
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
          "CLERK_WEBHOOK_SIGNING_SECRET: missing: Required in production (user sync)",
          "S3_BUCKET: missing: Required in production (local disk storage is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
        ])
      }
      const embedded = yield* load({
        ...productionBasics,
        DATABASE_URL: "",
        S3_BUCKET: "",
        ALLOW_EMBEDDED_IN_PRODUCTION: "true"
      })
      expect(Either.isRight(embedded)).toBe(true)
      expect(yield* problemsOf({ ...productionBasics, STORAGE_DRIVER: "local" })).toEqual([
        "STORAGE_DRIVER: invalid value: local disk storage is refused in production unless ALLOW_EMBEDDED_IN_PRODUCTION=true"
      ])
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

  it.effect("storage: the local disk by default, S3 when a bucket is configured; upload and image defaults", () =>
    Effect.gen(function* () {
      const local = yield* Effect.flatten(load({ PORT: "4100" }))
      expect(local.storage.driver).toBe("local")
      expect(local.storage.publicBaseUrl).toBe("http://localhost:4100")
      expect(Option.isNone(local.storage.signingSecret)).toBe(true)
      expect(local.uploads).toEqual({
        maxBytes: 10 * 1024 * 1024,
        urlTtlSeconds: 300,
        retentionSeconds: 86_400,
        sweepIntervalSeconds: 600,
        sweepMaxObjects: 10_000
      })
      expect(local.images).toEqual({
        maxEdge: 1280,
        thumbnailEdge: 320,
        maxPixels: 40_000_000,
        format: "webp",
        quality: 80,
        concurrency: 2
      })

      const s3 = yield* Effect.flatten(
        load({
          S3_BUCKET: "shots",
          S3_REGION: "auto",
          S3_ENDPOINT: "https://acct.r2.cloudflarestorage.com/",
          S3_ACCESS_KEY_ID: "AKID",
          S3_SECRET_ACCESS_KEY: "s3cr3t-value",
          PUBLIC_BASE_URL: "https://api.wingmate.test/"
        })
      )
      expect(s3.storage).toMatchObject({
        driver: "s3",
        bucket: Option.some("shots"),
        region: "auto",
        endpoint: Option.some("https://acct.r2.cloudflarestorage.com"),
        accessKeyId: Option.some("AKID"),
        forcePathStyle: false,
        publicBaseUrl: "https://api.wingmate.test"
      })
      expect(String(Option.getOrThrow(s3.storage.secretAccessKey))).not.toContain("s3cr3t")
      expect((yield* Effect.flatten(load({ S3_BUCKET: "shots", STORAGE_DRIVER: "local" }))).storage.driver).toBe(
        "local"
      )
    })
  )

  it.effect("storage settings that cannot work together are refused, each on its own line", () =>
    Effect.gen(function* () {
      expect(yield* problemsOf({ STORAGE_DRIVER: "s3" })).toEqual([
        "S3_BUCKET: missing: Required with STORAGE_DRIVER=s3"
      ])
      expect(yield* problemsOf({ S3_BUCKET: "b", S3_ACCESS_KEY_ID: "AKID" })).toEqual([
        "S3_SECRET_ACCESS_KEY: missing: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together (or neither: the AWS SDK's default credentials)"
      ])
      expect(yield* problemsOf({ UPLOAD_MAX_BYTES: "20000000" })).toEqual([
        "UPLOAD_MAX_BYTES: invalid value: Must not exceed MAX_BODY_BYTES (10485760) with local storage: the api receives the bytes itself"
      ])
      expect(yield* problemsOf({ S3_BUCKET: "b", UPLOAD_MAX_BYTES: "20000000" })).toEqual([])
      expect(yield* problemsOf({ UPLOAD_RETENTION_SECONDS: "60" })).toEqual([
        "UPLOAD_RETENTION_SECONDS: invalid value: Must be at least UPLOAD_URL_TTL_SECONDS (300): an upload URL must not outlive its record"
      ])
      const malformed = yield* problemsOf({
        PUBLIC_BASE_URL: "localhost:3000",
        UPLOAD_SIGNING_SECRET: "short",
        UPLOAD_URL_TTL_SECONDS: "86400",
        IMAGE_FORMAT: "gif",
        STORAGE_DRIVER: "gcs"
      })
      expect(malformed.map((line) => line.split(":")[0]).sort()).toEqual([
        "IMAGE_FORMAT",
        "PUBLIC_BASE_URL",
        "STORAGE_DRIVER",
        "UPLOAD_SIGNING_SECRET",
        "UPLOAD_URL_TTL_SECONDS"
      ])
    })
  )

  it.effect("ADMIN_TOKEN: a secret of 32+ characters (Redacted), refused when shorter; empty counts as unset", () =>
    Effect.gen(function* () {
      const token = "t".repeat(32)
      const config = yield* Effect.flatten(load({ ADMIN_TOKEN: token }))
      expect(Option.map(config.adminToken, Redacted.value)).toEqual(Option.some(token))
      expect(String(config.adminToken)).not.toContain(token)
      expect(Option.isNone((yield* Effect.flatten(load({ ADMIN_TOKEN: " " }))).adminToken)).toBe(true)
      expect(yield* problemsOf({ ADMIN_TOKEN: "short" })).toEqual([
        "ADMIN_TOKEN: invalid value: Expected at least 32 characters"
      ])
    })
  )
})
