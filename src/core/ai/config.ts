/**
 * The AI strategy's configuration: the chain's order, each provider's key, model and base URL,
 * timeouts, circuit breaker, prices and the daily spend cap. Read once at boot.
 */
import { Config, ConfigError, Effect, Either, Option, Redacted, Schema } from "effect"
import { allowEmbeddedConfig, nodeEnvConfig } from "../config.ts"
import { DEFAULT_PRICES, type PriceTable } from "./ledger.ts"
import { ProviderId } from "./provider.ts"

const PriceSchema = Schema.Struct({
  inputPerMillion: Schema.NonNegativeInt,
  outputPerMillion: Schema.NonNegativeInt
})
const PriceOverrides = Schema.parseJson(Schema.partial(Schema.Record({ key: ProviderId, value: PriceSchema })))

const providerId = (name?: string) =>
  (name === undefined ? Config.string() : Config.string(name)).pipe(
    Config.mapOrFail((value) =>
      Either.mapLeft(Schema.decodeUnknownEither(ProviderId)(value.trim()), () =>
        ConfigError.InvalidData([], `Expected one of gemini-flash, gpt-4o, claude-sonnet, local; got "${value}"`)
      )
    )
  )

const positiveInteger = (name: string) =>
  Config.integer(name).pipe(Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }))

const positive = (name: string, fallback: number) => positiveInteger(name).pipe(Config.withDefault(fallback))

/** A provider's own timeout; unset, it is `AI_TIMEOUT_MS` (resolved below, not a default of its own). */
const providerTimeout = (name: string) => Config.option(positiveInteger(name))

const optionalUrl = (name: string) =>
  Config.option(Config.string(name)).pipe(Config.map(Option.filter((value) => value.trim() !== "")))

const secret = (name: string) =>
  // An empty variable (compose's `${KEY:-}`) is no key: `String(redacted)` is "<redacted>", never empty.
  Config.option(Config.redacted(name)).pipe(Config.map(Option.filter((value) => Redacted.value(value).trim() !== "")))

const raw = Config.all({
  primary: providerId("AI_PROVIDER_STRATEGY_PRIMARY").pipe(Config.withDefault("gemini-flash" as const)),
  fallbacks: Config.array(providerId(), "AI_PROVIDER_STRATEGY_FALLBACKS").pipe(
    Config.withDefault<ReadonlyArray<ProviderId>>(["gpt-4o", "claude-sonnet"])
  ),
  timeoutMs: positive("AI_TIMEOUT_MS", 20_000),
  providerTimeouts: Config.all({
    gemini: providerTimeout("GEMINI_TIMEOUT_MS"),
    openai: providerTimeout("OPENAI_TIMEOUT_MS"),
    anthropic: providerTimeout("ANTHROPIC_TIMEOUT_MS")
  }),
  gemini: Config.all({
    apiKey: secret("GEMINI_API_KEY"),
    model: Config.string("GEMINI_MODEL").pipe(Config.withDefault("gemini-2.5-flash")),
    baseUrl: optionalUrl("GEMINI_BASE_URL")
  }),
  openai: Config.all({
    apiKey: secret("OPENAI_API_KEY"),
    model: Config.string("OPENAI_MODEL").pipe(Config.withDefault("gpt-4o")),
    baseUrl: optionalUrl("OPENAI_BASE_URL")
  }),
  anthropic: Config.all({
    apiKey: secret("ANTHROPIC_API_KEY"),
    model: Config.string("ANTHROPIC_MODEL").pipe(Config.withDefault("claude-sonnet-4-6")),
    baseUrl: optionalUrl("ANTHROPIC_BASE_URL")
  }),
  breakerFailures: positive("AI_BREAKER_FAILURES", 3),
  breakerCooldownMs: positive("AI_BREAKER_COOLDOWN_MS", 30_000),
  dailyCapMicros: Config.integer("AI_DAILY_SPEND_CAP_MICROS").pipe(
    Config.validate({ message: "Expected 0 (no cap) or a positive integer", validation: (n) => n >= 0 }),
    Config.withDefault(500_000)
  ),
  priceOverrides: Config.option(Config.string("AI_PRICES")).pipe(
    Config.mapOrFail(
      Option.match({
        onNone: () => Either.right({}),
        onSome: (json) =>
          Either.mapLeft(Schema.decodeUnknownEither(PriceOverrides)(json), () =>
            ConfigError.InvalidData(
              [],
              'Expected JSON like {"gpt-4o":{"inputPerMillion":2500000,"outputPerMillion":10000000}}'
            )
          )
      })
    )
  )
})

export class AiConfig extends Effect.Service<AiConfig>()("AiConfig", {
  effect: Effect.gen(function* () {
    // Not AppConfig: these settings decode on their own, so a check lists their problems beside the app's.
    const app = {
      isProduction: (yield* Effect.option(nodeEnvConfig)).pipe(Option.exists((env) => env === "production")),
      allowEmbeddedInProduction: Option.getOrElse(yield* Effect.option(allowEmbeddedConfig), () => false)
    }
    const env = yield* raw
    const prices: PriceTable = { ...DEFAULT_PRICES, ...env.priceOverrides }
    const hasKey = [env.gemini.apiKey, env.openai.apiKey, env.anthropic.apiKey].some(Option.isSome)
    if (app.isProduction && !hasKey && !app.allowEmbeddedInProduction) {
      return yield* Effect.fail(
        ConfigError.MissingData(
          ["GEMINI_API_KEY"],
          "Production needs at least one AI provider key (GEMINI_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY)"
        )
      )
    }
    return {
      ...env,
      prices,
      timeouts: {
        gemini: Option.getOrElse(env.providerTimeouts.gemini, () => env.timeoutMs),
        openai: Option.getOrElse(env.providerTimeouts.openai, () => env.timeoutMs),
        anthropic: Option.getOrElse(env.providerTimeouts.anthropic, () => env.timeoutMs)
      },
      /** Outside production with no key at all, the chain is the local provider alone. */
      localOnly: !hasKey
    } as const
  })
}) {}
