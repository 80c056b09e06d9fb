/**
 * Builds the chain from configuration: primary then fallbacks, each provider with a key; a
 * provider without a key is left out (one log line). With no key at all outside production,
 * the chain is the local provider, said once at boot.
 */
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"
import { makeAnthropicProvider } from "./anthropic.ts"
import { AiConfig } from "./config.ts"
import { makeGeminiProvider } from "./gemini.ts"
import { makeLocalProvider } from "./local.ts"
import { makeOpenAiProvider } from "./openai.ts"
import type { AiProvider, ProviderId } from "./provider.ts"
import { AiStrategy } from "./strategy.ts"

export const AiStrategyLive = Layer.effect(
  AiStrategy,
  Effect.gen(function* () {
    const config = yield* AiConfig
    const app = yield* AppConfig
    const order = [...new Set<ProviderId>([config.primary, ...config.fallbacks])]
    const build = (id: ProviderId): Option.Option<AiProvider> => {
      switch (id) {
        case "gemini-flash":
          return Option.map(config.gemini.apiKey, (apiKey) =>
            makeGeminiProvider({
              apiKey,
              model: config.gemini.model,
              timeoutMs: config.geminiTimeoutMs,
              baseUrl: Option.getOrUndefined(config.gemini.baseUrl)
            })
          )
        case "gpt-4o":
          return Option.map(config.openai.apiKey, (apiKey) =>
            makeOpenAiProvider({
              apiKey,
              model: config.openai.model,
              timeoutMs: config.timeoutMs,
              baseUrl: Option.getOrUndefined(config.openai.baseUrl)
            })
          )
        case "claude-sonnet":
          return Option.map(config.anthropic.apiKey, (apiKey) =>
            makeAnthropicProvider({
              apiKey,
              model: config.anthropic.model,
              timeoutMs: config.timeoutMs,
              baseUrl: Option.getOrUndefined(config.anthropic.baseUrl)
            })
          )
        case "local":
          return app.isProduction ? Option.none() : Option.some(makeLocalProvider())
      }
    }
    const providers: Array<AiProvider> = []
    for (const id of order) {
      const provider = build(id)
      if (Option.isSome(provider)) providers.push(provider.value)
      else if (!config.localOnly) yield* Effect.logWarning(`AI: ${id} has no key, left out of the chain`)
    }
    if (providers.length === 0) {
      yield* Effect.logWarning(
        "AI: no provider key configured, using the local deterministic provider (offline, labelled `local` in responses)"
      )
      providers.push(makeLocalProvider())
    } else {
      yield* Effect.logInfo(
        `AI chain: ${providers.map((provider) => `${provider.id} (${provider.model})`).join(" → ")}`
      )
    }
    return yield* AiStrategy.make({
      providers,
      prices: config.prices,
      breaker: { failures: config.breakerFailures, cooldownMs: config.breakerCooldownMs },
      dailyCapMicros: config.dailyCapMicros
    })
  })
).pipe(Layer.provide(AiConfig.Default))
