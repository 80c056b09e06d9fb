/**
 * Every environment variable the server reads, decoded once at boot. Secrets stay `Redacted`.
 * `.env.example` and the README list the same variables; keep the three in step.
 */
import { Config, ConfigError, Effect, LogLevel, Option, Redacted } from "effect"

const nonEmptyRedacted = (name: string) =>
  Config.option(Config.redacted(name)).pipe(Config.map(Option.filter((value) => Redacted.value(value).trim() !== "")))

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const raw = Config.all({
  nodeEnv: Config.literal("development", "production", "test")("NODE_ENV").pipe(Config.withDefault("development")),
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "Expected a port between 0 and 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(3000)
  ),
  logLevel: Config.logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  logFormat: Config.option(Config.literal("json", "pretty")("LOG_FORMAT")),
  databaseUrl: nonEmptyRedacted("DATABASE_URL"),
  databasePoolMax: positiveInt("DATABASE_POOL_MAX", 10),
  migrateOnBoot: Config.boolean("DATABASE_MIGRATE_ON_BOOT").pipe(Config.withDefault(false)),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(".data")),
  redisUrl: nonEmptyRedacted("REDIS_URL"),
  corsOrigins: Config.array(Config.string(), "CORS_ORIGINS").pipe(
    Config.map((origins): ReadonlyArray<string> =>
      origins.map((origin) => origin.trim()).filter((origin) => origin !== "")
    ),
    Config.withDefault<ReadonlyArray<string>>([])
  ),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10 * 1024 * 1024),
  shutdownTimeoutMs: positiveInt("SHUTDOWN_TIMEOUT_MS", 10_000),
  allowEmbeddedInProduction: Config.boolean("ALLOW_EMBEDDED_IN_PRODUCTION").pipe(Config.withDefault(false))
})

export type AppConfigShape = Effect.Effect.Success<typeof load>

const load = Effect.gen(function* () {
  const env = yield* raw
  if (env.nodeEnv === "production" && Option.isNone(env.databaseUrl) && !env.allowEmbeddedInProduction) {
    return yield* Effect.fail(
      ConfigError.MissingData(
        ["DATABASE_URL"],
        "Required in production (an embedded database is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
      )
    )
  }
  return {
    ...env,
    isProduction: env.nodeEnv === "production",
    logFormat: Option.getOrElse(env.logFormat, () => (env.nodeEnv === "production" ? "json" : "pretty"))
  } as const
})

export class AppConfig extends Effect.Service<AppConfig>()("AppConfig", { effect: load }) {}

/** One readable line per problem, naming the variable: what boot prints before exiting 1. */
export const describeConfigError = (error: ConfigError.ConfigError): ReadonlyArray<string> =>
  ConfigError.reduceWithContext(error, undefined, {
    andCase: (_, left: ReadonlyArray<string>, right: ReadonlyArray<string>) => [...left, ...right],
    orCase: (_, left: ReadonlyArray<string>, right: ReadonlyArray<string>) => [...left, ...right],
    invalidDataCase: (_, path, message) => [`${path.join("_")}: invalid value: ${message}`],
    missingDataCase: (_, path, message) => [`${path.join("_")}: missing: ${message}`],
    sourceUnavailableCase: (_, path, message) => [`${path.join("_")}: unreadable: ${message}`],
    unsupportedCase: (_, path, message) => [`${path.join("_")}: unsupported: ${message}`]
  })
