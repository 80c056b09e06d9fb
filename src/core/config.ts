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

/** A comma-separated list; blanks dropped. */
const list = (name: string) =>
  Config.array(Config.string(), name).pipe(
    Config.map((items): ReadonlyArray<string> => items.map((item) => item.trim()).filter((item) => item !== "")),
    Config.withDefault<ReadonlyArray<string>>([])
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
  corsOrigins: list("CORS_ORIGINS"),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10 * 1024 * 1024),
  shutdownTimeoutMs: positiveInt("SHUTDOWN_TIMEOUT_MS", 10_000),
  allowEmbeddedInProduction: Config.boolean("ALLOW_EMBEDDED_IN_PRODUCTION").pipe(Config.withDefault(false)),
  // PEM public keys are often stored on one line with literal "\n" escapes.
  clerkJwtKey: Config.option(Config.string("CLERK_JWT_KEY")).pipe(
    Config.map(Option.map((pem) => pem.replaceAll("\\n", "\n").trim())),
    Config.map(Option.filter((pem) => pem !== ""))
  ),
  clerkSecretKey: nonEmptyRedacted("CLERK_SECRET_KEY"),
  clerkAuthorizedParties: list("CLERK_AUTHORIZED_PARTIES"),
  clerkWebhookSigningSecret: nonEmptyRedacted("CLERK_WEBHOOK_SIGNING_SECRET"),
  authClockSkewMs: Config.integer("AUTH_CLOCK_SKEW_MS").pipe(
    Config.validate({ message: "Expected 0 to 60000 milliseconds", validation: (n) => n >= 0 && n <= 60_000 }),
    Config.withDefault(5_000)
  ),
  userCacheTtlMs: positiveInt("USER_CACHE_TTL_MS", 30_000)
})

export type AppConfigShape = Effect.Effect.Success<typeof load>

/** What production cannot do without, on top of what each variable's own decoding checks. */
const productionProblems = (env: Config.Config.Success<typeof raw>): ReadonlyArray<ConfigError.ConfigError> => {
  if (env.nodeEnv !== "production") return []
  const problems: Array<ConfigError.ConfigError> = []
  if (Option.isNone(env.databaseUrl) && !env.allowEmbeddedInProduction) {
    problems.push(
      ConfigError.MissingData(
        ["DATABASE_URL"],
        "Required in production (an embedded database is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
      )
    )
  }
  if (Option.isNone(env.clerkJwtKey) && Option.isNone(env.clerkSecretKey)) {
    problems.push(
      ConfigError.MissingData(["CLERK_JWT_KEY"], "Required in production, or CLERK_SECRET_KEY (dev auth is refused)")
    )
  }
  if (Option.isNone(env.clerkWebhookSigningSecret)) {
    problems.push(ConfigError.MissingData(["CLERK_WEBHOOK_SIGNING_SECRET"], "Required in production (user sync)"))
  }
  return problems
}

const load = Effect.gen(function* () {
  const env = yield* raw
  const [first, ...rest] = productionProblems(env)
  if (first !== undefined) {
    return yield* Effect.fail(rest.reduce((all, problem) => ConfigError.And(all, problem), first))
  }
  return {
    ...env,
    isProduction: env.nodeEnv === "production",
    /** No Clerk key outside production: tokens are signed and verified with a local dev key pair. */
    devAuth: env.nodeEnv !== "production" && Option.isNone(env.clerkJwtKey) && Option.isNone(env.clerkSecretKey),
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
