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
    const sdks = {
      "gemini-flash": { settings: config.gemini, make: makeGeminiProvider, timeoutMs: config.timeouts.gemini },
      "gpt-4o": { settings: config.openai, make: makeOpenAiProvider, timeoutMs: config.timeouts.openai },
      "claude-sonnet": { settings: config.anthropic, make: makeAnthropicProvider, timeoutMs: config.timeouts.anthropic }
    } as const
    const build = (id: ProviderId): Option.Option<AiProvider> => {
      if (id === "local") return app.isProduction ? Option.none() : Option.some(makeLocalProvider())
      const sdk = sdks[id]
      return Option.map(sdk.settings.apiKey, (apiKey) =>
        sdk.make({
          apiKey,
          model: sdk.settings.model,
          timeoutMs: sdk.timeoutMs,
          baseUrl: Option.getOrUndefined(sdk.settings.baseUrl)
        })
      )
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
        `AI chain: ${providers.map((provider) => `${provider.id} (${provider.model}, ${provider.timeoutMs} ms)`).join(" → ")}`
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
