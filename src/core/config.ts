/**
 * Every environment variable the server reads, decoded once at boot. Secrets stay `Redacted`.
 * `.env.example` and the README list the same variables; keep the three in step.
 */
import { Config, ConfigError, Effect, LogLevel, Option, Redacted } from "effect"
import { queueConfig } from "./queue/config.ts"
import { rateLimitsConfig, trustProxyConfig } from "./rate-limit/config.ts"

const nonEmptyRedacted = (name: string) =>
  Config.option(Config.redacted(name)).pipe(Config.map(Option.filter((value) => Redacted.value(value).trim() !== "")))

const positiveInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

const intBetween = (name: string, min: number, max: number, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `Expected an integer from ${min} to ${max}`, validation: (n) => n >= min && n <= max }),
    Config.withDefault(fallback)
  )

const nonEmptyString = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Config.map(Option.map((value) => value.trim())),
    Config.map(Option.filter((value) => value !== ""))
  )

// Validation goes straight on the named primitive: after a map, errors lose the variable's name.

/** An absolute http(s) URL without a trailing slash; empty counts as unset. */
const httpUrl = (name: string) =>
  Config.option(
    Config.string(name).pipe(
      Config.validate({
        message: "Expected an absolute http:// or https:// URL",
        validation: (value) => value.trim() === "" || /^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/.test(value.trim())
      }),
      Config.map((value) => value.trim().replace(/\/+$/, ""))
    )
  ).pipe(Config.map(Option.filter((value) => value !== "")))

/** A secret of at least `minLength` characters; empty counts as unset. */
const strongSecret = (name: string, minLength: number) =>
  Config.option(
    Config.string(name).pipe(
      Config.validate({
        message: `Expected at least ${minLength} characters`,
        validation: (secret) => secret.trim() === "" || secret.length >= minLength
      }),
      Config.map(Redacted.make)
    )
  ).pipe(Config.map(Option.filter((value) => Redacted.value(value).trim() !== "")))

const LOG_LEVELS: Record<string, LogLevel.LogLevel> = {
  trace: LogLevel.Trace,
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  warn: LogLevel.Warning,
  error: LogLevel.Error,
  fatal: LogLevel.Fatal,
  none: LogLevel.None,
  off: LogLevel.None,
  all: LogLevel.All
}

/** The names the README documents (`Warning`, `None`) and Effect's own labels (`WARN`, `OFF`), any case. */
const logLevel = (name: string) =>
  Config.string(name).pipe(
    Config.validate({
      message: "Expected one of Trace, Debug, Info, Warning, Error, Fatal, None, All",
      validation: (value) => Object.hasOwn(LOG_LEVELS, value.trim().toLowerCase())
    }),
    Config.map((value) => LOG_LEVELS[value.trim().toLowerCase()] ?? LogLevel.Info)
  )

/** A comma-separated list; blanks dropped. */
const list = (name: string) =>
  Config.array(Config.string(), name).pipe(
    Config.map((items): ReadonlyArray<string> => items.map((item) => item.trim()).filter((item) => item !== "")),
    Config.withDefault<ReadonlyArray<string>>([])
  )

/** Read by other layers' settings too (the AI chain's), so that each decodes on its own. */
export const nodeEnvConfig = Config.literal(
  "development",
  "production",
  "test"
)("NODE_ENV").pipe(Config.withDefault("development"))
export const allowEmbeddedConfig = Config.boolean("ALLOW_EMBEDDED_IN_PRODUCTION").pipe(Config.withDefault(false))

const raw = Config.all({
  nodeEnv: nodeEnvConfig,
  host: Config.string("HOST").pipe(Config.withDefault("0.0.0.0")),
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "Expected a port between 0 and 65535", validation: (n) => n >= 0 && n <= 65535 }),
    Config.withDefault(3000)
  ),
  logLevel: logLevel("LOG_LEVEL").pipe(Config.withDefault(LogLevel.Info)),
  logFormat: Config.option(Config.literal("json", "pretty")("LOG_FORMAT")),
  databaseUrl: nonEmptyRedacted("DATABASE_URL"),
  databasePoolMax: positiveInt("DATABASE_POOL_MAX", 10),
  migrateOnBoot: Config.boolean("DATABASE_MIGRATE_ON_BOOT").pipe(Config.withDefault(false)),
  dataDir: Config.string("DATA_DIR").pipe(Config.withDefault(".data")),
  redisUrl: nonEmptyRedacted("REDIS_URL"),
  corsOrigins: list("CORS_ORIGINS"),
  maxBodyBytes: positiveInt("MAX_BODY_BYTES", 10 * 1024 * 1024),
  shutdownTimeoutMs: positiveInt("SHUTDOWN_TIMEOUT_MS", 10_000),
  /** The worker's liveness endpoint (GET /health/live); 0: none (several workers may share a host). */
  workerHealthPort: intBetween("WORKER_HEALTH_PORT", 0, 65_535, 0),
  /** Slow clients: Node's defaults hold a connection for minutes (headers 60 s, a body 300 s). */
  http: Config.all({
    /** The request line and headers must arrive within this. */
    headersTimeoutMs: intBetween("HTTP_HEADERS_TIMEOUT_MS", 1_000, 120_000, 10_000),
    /** The whole request (headers and body) must arrive within this; at least the headers' timeout. */
    requestTimeoutMs: intBetween("HTTP_REQUEST_TIMEOUT_MS", 1_000, 600_000, 60_000),
    /** An idle keep-alive connection is closed after this (behind a balancer: above its idle timeout). */
    keepAliveTimeoutMs: intBetween("HTTP_KEEP_ALIVE_TIMEOUT_MS", 1_000, 600_000, 5_000),
    /** Open connections from one address (the socket's peer); 0: no cap (behind a proxy that caps them). */
    maxConnectionsPerAddress: intBetween("HTTP_MAX_CONNECTIONS_PER_ADDRESS", 0, 100_000, 256)
  }),
  /**
   * Guards the operator routes (`/metrics`, `/admin/queues`, the worker's `/metrics`): a bearer
   * token (or HTTP Basic password) compared in constant time. Unset: open in development, off in production.
   */
  adminToken: strongSecret("ADMIN_TOKEN", 32),
  /** The interactive reference at /docs; unset: on, except in production. */
  docsEnabled: Config.option(Config.boolean("API_DOCS_ENABLED")),
  allowEmbeddedInProduction: allowEmbeddedConfig,
  // PEM public keys are often stored on one line with literal "\n" escapes.
  clerkJwtKey: Config.option(Config.string("CLERK_JWT_KEY")).pipe(
    Config.map(Option.map((pem) => pem.replaceAll("\\n", "\n").trim())),
    Config.map(Option.filter((pem) => pem !== ""))
  ),
  clerkSecretKey: nonEmptyRedacted("CLERK_SECRET_KEY"),
  clerkAuthorizedParties: list("CLERK_AUTHORIZED_PARTIES"),
  clerkWebhookSigningSecret: nonEmptyRedacted("CLERK_WEBHOOK_SIGNING_SECRET"),
  /**
   * How long a webhook delivery's id is kept to recognise its redeliveries; older ones are pruned.
   * At least two days: Svix retries a failed delivery for about 27.5 hours (5 s, 5 min, 30 min,
   * 2 h, 5 h, 10 h, 10 h), and a redelivery whose id is gone would be processed again.
   */
  webhookDeliveryRetentionSeconds: intBetween(
    "WEBHOOK_DELIVERY_RETENTION_SECONDS",
    2 * 24 * 60 * 60,
    365 * 24 * 60 * 60,
    3 * 24 * 60 * 60
  ),
  authClockSkewMs: Config.integer("AUTH_CLOCK_SKEW_MS").pipe(
    Config.validate({ message: "Expected 0 to 60000 milliseconds", validation: (n) => n >= 0 && n <= 60_000 }),
    Config.withDefault(5_000)
  ),
  userCacheTtlMs: positiveInt("USER_CACHE_TTL_MS", 30_000),
  storage: Config.all({
    driver: Config.option(Config.literal("s3", "local")("STORAGE_DRIVER")),
    bucket: nonEmptyString("S3_BUCKET"),
    region: Config.string("S3_REGION").pipe(Config.withDefault("us-east-1")),
    endpoint: httpUrl("S3_ENDPOINT"),
    accessKeyId: nonEmptyString("S3_ACCESS_KEY_ID"),
    secretAccessKey: nonEmptyRedacted("S3_SECRET_ACCESS_KEY"),
    forcePathStyle: Config.boolean("S3_FORCE_PATH_STYLE").pipe(Config.withDefault(false)),
    publicBaseUrl: httpUrl("PUBLIC_BASE_URL"),
    signingSecret: strongSecret("UPLOAD_SIGNING_SECRET", 32)
  }),
  uploads: Config.all({
    maxBytes: positiveInt("UPLOAD_MAX_BYTES", 10 * 1024 * 1024),
    urlTtlSeconds: intBetween("UPLOAD_URL_TTL_SECONDS", 30, 3600, 300),
    retentionSeconds: positiveInt("UPLOAD_RETENTION_SECONDS", 24 * 60 * 60),
    sweepIntervalSeconds: positiveInt("UPLOAD_SWEEP_INTERVAL_SECONDS", 600),
    /** Objects one sweep lists under `users/` at most, looking for strays (S3 bills each list call of 1000). */
    sweepMaxObjects: intBetween("UPLOAD_SWEEP_MAX_OBJECTS", 1000, 10_000_000, 10_000)
  }),
  sessions: Config.all({
    /**
     * 0: the full-size screenshots (originals and normalised images) are deleted right after OCR
     * succeeds; > 0: kept this long, then swept. The thumbnails stay with their session.
     */
    screenshotRetentionSeconds: intBetween("SESSION_SCREENSHOT_RETENTION_SECONDS", 0, 30 * 24 * 60 * 60, 0),
    /**
     * Life of the signed thumbnail URLs a session view carries: long enough for a screen of history,
     * short enough that a leaked URL (logs, a shared screen) soon shows nothing; the app reads the
     * session again for fresh ones.
     */
    thumbnailUrlTtlSeconds: intBetween("SESSION_THUMBNAIL_URL_TTL_SECONDS", 1, 3600, 600),
    /**
     * A session queued or processing and untouched this long has its job looked up, every this
     * long; a job that is gone (Redis restarted empty, a failover) is enqueued again. 0: never.
     */
    reconcileSeconds: intBetween("SESSION_RECONCILE_SECONDS", 0, 24 * 60 * 60, 30),
    /** How often an open events stream checks the session in the database (its progress may be gone). */
    eventsDbCheckMs: intBetween("SESSION_EVENTS_DB_CHECK_MS", 100, 60_000, 5_000),
    /** Sessions created per user and UTC day (each reads its screenshots and writes suggestions with the models). */
    dailyLimit: intBetween("SESSIONS_DAILY_LIMIT", 1, 10_000, 50),
    /** New suggestion batches (regenerations) per user and UTC day, over all their sessions. */
    regenerationsDailyLimit: intBetween("REGENERATIONS_DAILY_LIMIT", 1, 10_000, 100)
  }),
  images: Config.all({
    maxEdge: intBetween("IMAGE_MAX_EDGE", 64, 8192, 1280),
    thumbnailEdge: intBetween("IMAGE_THUMBNAIL_EDGE", 16, 1024, 320),
    maxPixels: positiveInt("IMAGE_MAX_PIXELS", 40_000_000),
    format: Config.literal("webp", "jpeg")("IMAGE_FORMAT").pipe(Config.withDefault("webp")),
    quality: intBetween("IMAGE_QUALITY", 1, 100, 80),
    concurrency: intBetween("IMAGE_CONCURRENCY", 1, 64, 2)
  }),
  queue: queueConfig,
  rateLimits: rateLimitsConfig,
  /** Proxy hops whose `X-Forwarded-For` entries are trusted for the client IP (0: the socket's address). */
  trustProxy: trustProxyConfig,
  tracing: Config.all({
    /** OTLP/HTTP collector base URL (`/v1/traces` is appended); unset: spans are not exported. */
    endpoint: httpUrl("OTEL_EXPORTER_OTLP_ENDPOINT"),
    /** Overrides the process's own name (`wingmate-api`, `wingmate-worker`, `wingmate-dev`). */
    serviceName: nonEmptyString("OTEL_SERVICE_NAME")
  }),
  openers: Config.all({
    dailyLimit: intBetween("OPENERS_DAILY_LIMIT", 1, 10_000, 50),
    safetyPolicy: Config.literal("standard", "strict")("OPENERS_SAFETY_POLICY").pipe(Config.withDefault("standard"))
  }),
  realtime: Config.all({
    /** A new connection must send `auth` within this time. */
    authTimeoutMs: intBetween("WS_AUTH_TIMEOUT_MS", 100, 120_000, 10_000),
    /** A connection that sends nothing (not even `ping`) for this long is closed. */
    idleTimeoutMs: intBetween("WS_IDLE_TIMEOUT_MS", 200, 3_600_000, 60_000),
    /** How long before the token's expiry `auth.expiring` is sent. */
    expiryWarningMs: intBetween("WS_EXPIRY_WARNING_MS", 0, 3_600_000, 60_000),
    /** Frames above this get an error frame; frames above 4× this end the connection (1009). */
    maxFrameBytes: intBetween("WS_MAX_FRAME_BYTES", 256, 1_048_576, 16_384),
    /** Bytes queued for a client that does not read; past it the connection closes (1013). */
    maxBufferedBytes: intBetween("WS_MAX_BUFFERED_BYTES", 1024, 64 * 1_048_576, 1_048_576),
    /** Open connections per user on one api instance. */
    maxConnectionsPerUser: intBetween("WS_MAX_CONNECTIONS_PER_USER", 1, 1000, 5),
    /** Sessions followed at once on one connection. */
    maxSubscriptions: intBetween("WS_MAX_SUBSCRIPTIONS", 1, 1000, 20),
    /** Opener generations in flight at once on one connection. */
    maxGenerations: intBetween("WS_MAX_GENERATIONS", 1, 100, 2)
  })
})

export type AppConfigShape = Effect.Effect.Success<typeof load>

type RawConfig = Config.Config.Success<typeof raw>

/** S3 when asked for, or when a bucket is configured; the local disk otherwise. */
const storageDriverOf = (env: RawConfig): "s3" | "local" =>
  Option.getOrElse(env.storage.driver, () => (Option.isSome(env.storage.bucket) ? "s3" : "local"))

/** Variables that are valid one by one but not together. */
const consistencyProblems = (env: RawConfig): ReadonlyArray<ConfigError.ConfigError> => {
  const problems: Array<ConfigError.ConfigError> = []
  const driver = storageDriverOf(env)
  if (driver === "s3" && Option.isNone(env.storage.bucket)) {
    problems.push(ConfigError.MissingData(["S3_BUCKET"], "Required with STORAGE_DRIVER=s3"))
  }
  if (Option.isSome(env.storage.accessKeyId) !== Option.isSome(env.storage.secretAccessKey)) {
    problems.push(
      ConfigError.MissingData(
        [Option.isSome(env.storage.accessKeyId) ? "S3_SECRET_ACCESS_KEY" : "S3_ACCESS_KEY_ID"],
        "S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY go together (or neither: the AWS SDK's default credentials)"
      )
    )
  }
  if (env.uploads.retentionSeconds < env.uploads.urlTtlSeconds) {
    problems.push(
      ConfigError.InvalidData(
        ["UPLOAD_RETENTION_SECONDS"],
        `Must be at least UPLOAD_URL_TTL_SECONDS (${env.uploads.urlTtlSeconds}): an upload URL must not outlive its record`
      )
    )
  }
  if (env.http.requestTimeoutMs < env.http.headersTimeoutMs) {
    problems.push(
      ConfigError.InvalidData(
        ["HTTP_REQUEST_TIMEOUT_MS"],
        `Must be at least HTTP_HEADERS_TIMEOUT_MS (${env.http.headersTimeoutMs}): the request includes its headers`
      )
    )
  }
  if (driver === "local" && env.uploads.maxBytes > env.maxBodyBytes) {
    problems.push(
      ConfigError.InvalidData(
        ["UPLOAD_MAX_BYTES"],
        `Must not exceed MAX_BODY_BYTES (${env.maxBodyBytes}) with local storage: the api receives the bytes itself`
      )
    )
  }
  return problems
}

/** What production cannot do without, on top of what each variable's own decoding checks. */
const productionProblems = (env: RawConfig): ReadonlyArray<ConfigError.ConfigError> => {
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
  if (storageDriverOf(env) === "local" && !env.allowEmbeddedInProduction) {
    problems.push(
      Option.isSome(env.storage.driver)
        ? ConfigError.InvalidData(
            ["STORAGE_DRIVER"],
            "local disk storage is refused in production unless ALLOW_EMBEDDED_IN_PRODUCTION=true"
          )
        : ConfigError.MissingData(
            ["S3_BUCKET"],
            "Required in production (local disk storage is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
          )
    )
  }
  return problems
}

const load = Effect.gen(function* () {
  const env = yield* raw
  const [first, ...rest] = [...consistencyProblems(env), ...productionProblems(env)]
  if (first !== undefined) {
    return yield* Effect.fail(rest.reduce((all, problem) => ConfigError.And(all, problem), first))
  }
  return {
    ...env,
    isProduction: env.nodeEnv === "production",
    docsEnabled: Option.getOrElse(env.docsEnabled, () => env.nodeEnv !== "production"),
    /** No Clerk key outside production: tokens are signed and verified with a local dev key pair. */
    devAuth: env.nodeEnv !== "production" && Option.isNone(env.clerkJwtKey) && Option.isNone(env.clerkSecretKey),
    storage: {
      ...env.storage,
      driver: storageDriverOf(env),
      /** The origin the local storage signs its URLs with (what the app can reach). */
      publicBaseUrl: Option.getOrElse(env.storage.publicBaseUrl, () => `http://localhost:${env.port}`)
    },
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
