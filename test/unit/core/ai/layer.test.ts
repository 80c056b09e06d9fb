/** The chain as configuration builds it: order, keys, the local provider, production's refusal. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Layer, Logger, LogLevel, Schema } from "effect"
import { AiLedger } from "../../../../src/core/ai/ledger.ts"
import { AiStrategyLive } from "../../../../src/core/ai/layer.ts"
import { AiStrategy } from "../../../../src/core/ai/strategy.ts"
import { AppConfig, describeConfigError } from "../../../../src/core/config.ts"

const strategyWith = (env: Record<string, string>) =>
  AiStrategy.pipe(
    Effect.provide(
      AiStrategyLive.pipe(
        Layer.provide(AiLedger.memory),
        Layer.provide(AppConfig.Default),
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

const Opener = Schema.Struct({
  opener: Schema.String.pipe(Schema.minLength(3)),
  score: Schema.Int.pipe(Schema.between(1, 5))
})

describe("AiStrategyLive", () => {
  it.effect("no key outside production: the local provider alone, deterministic and labelled", () =>
    Effect.gen(function* () {
      const strategy = yield* Effect.flatten(strategyWith({}))
      expect(strategy.providers).toEqual([{ id: "local", model: "local-deterministic", timeoutMs: 5_000 }])
      const first = yield* strategy.generateObject({ feature: "test" }, { schema: Opener, prompt: "same prompt" })
      const again = yield* strategy.generateObject({ feature: "test" }, { schema: Opener, prompt: "same prompt" })
      expect(first.local).toBe(true)
      expect(first.provider).toBe("local")
      expect(Schema.is(Opener)(first.value)).toBe(true)
      expect(again.value).toEqual(first.value)
      expect(first.costMicros).toBe(0)
    })
  )

  it.effect("keys decide the chain; the configured order is kept; keyless providers are left out", () =>
    Effect.gen(function* () {
      const strategy = yield* Effect.flatten(
        strategyWith({
          AI_PROVIDER_STRATEGY_PRIMARY: "gemini-flash",
          AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet,gpt-4o",
          OPENAI_API_KEY: "sk-test",
          ANTHROPIC_API_KEY: "sk-ant-test",
          ANTHROPIC_MODEL: "claude-x"
        })
      )
      expect(strategy.providers).toEqual([
        { id: "claude-sonnet", model: "claude-x", timeoutMs: 20_000 },
        { id: "gpt-4o", model: "gpt-4o", timeoutMs: 20_000 }
      ])
    })
  )

  it.effect("every provider's timeout falls back to AI_TIMEOUT_MS; a provider's own setting wins for it alone", () =>
    Effect.gen(function* () {
      const keys = { GEMINI_API_KEY: "g-key", OPENAI_API_KEY: "sk-test", ANTHROPIC_API_KEY: "sk-ant-test" }
      const shared = yield* Effect.flatten(strategyWith({ ...keys, AI_TIMEOUT_MS: "1500" }))
      expect(shared.providers.map(({ id, timeoutMs }) => [id, timeoutMs])).toEqual([
        ["gemini-flash", 1500],
        ["gpt-4o", 1500],
        ["claude-sonnet", 1500]
      ])
      for (const [variable, id] of [
        ["GEMINI_TIMEOUT_MS", "gemini-flash"],
        ["OPENAI_TIMEOUT_MS", "gpt-4o"],
        ["ANTHROPIC_TIMEOUT_MS", "claude-sonnet"]
      ] as const) {
        const own = yield* Effect.flatten(strategyWith({ ...keys, AI_TIMEOUT_MS: "1500", [variable]: "700" }))
        expect(own.providers.map((provider) => provider.timeoutMs)).toEqual(
          own.providers.map((provider) => (provider.id === id ? 700 : 1500))
        )
      }
      const refused = yield* strategyWith({ ...keys, OPENAI_TIMEOUT_MS: "0" })
      expect(Either.isLeft(refused) && describeConfigError(refused.left).join()).toContain("OPENAI_TIMEOUT_MS")
    })
  )

  it.effect("production without any AI key refuses to start; a bad provider name is named", () =>
    Effect.gen(function* () {
      // Empty keys (compose's `${OPENAI_API_KEY:-}` with nothing exported) are no keys.
      const blank = { GEMINI_API_KEY: "", OPENAI_API_KEY: "", ANTHROPIC_API_KEY: " " }
      const local = yield* Effect.flatten(strategyWith(blank))
      expect(local.providers.map((provider) => provider.id)).toEqual(["local"])
      const refused = yield* strategyWith({ ...production, ...blank })
      expect(Either.isLeft(refused) && describeConfigError(refused.left)).toEqual([
        "GEMINI_API_KEY: missing: Production needs at least one AI provider key (GEMINI_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY)"
      ])
      const running = yield* Effect.flatten(strategyWith({ ...production, GEMINI_API_KEY: "g-key" }))
      expect(running.providers.map((provider) => provider.id)).toEqual(["gemini-flash"])
      const bad = yield* strategyWith({ AI_PROVIDER_STRATEGY_PRIMARY: "gpt-5-turbo" })
      expect(Either.isLeft(bad) && describeConfigError(bad.left)[0]).toMatch(
        /^AI_PROVIDER_STRATEGY_PRIMARY: invalid value/
      )
    })
  )
})
