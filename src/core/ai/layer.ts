/**
 * Builds the chain from configuration: primary then fallbacks, each provider with a key; a
 * provider without a key is left out (one log line). With no key at all outside production,
 * the chain is the local provider, said once at boot.
 *
 * A provider's SDK is loaded only when the provider has a key (`import()` of its adapter here):
 * a process loads none of the three SDKs it is not configured for (each ~10 MB of heap, issue #17).
 */
import { Effect, Layer, Option } from "effect"
import { AppConfig } from "../config.ts"
import { AiConfig } from "./config.ts"
import { makeLocalProvider } from "./local.ts"
import type { AiProvider, ProviderId, SdkProviderOptions } from "./provider.ts"
import { AiStrategy } from "./strategy.ts"

type SdkAdapter = (options: SdkProviderOptions) => AiProvider

/** A failure to load an installed adapter is a broken installation: a defect, as a failed static import would be. */
const loadAdapter = (load: () => Promise<SdkAdapter>) => Effect.orDie(Effect.tryPromise(load))

export const AiStrategyLive = Layer.effect(
  AiStrategy,
  Effect.gen(function* () {
    const config = yield* AiConfig
    const app = yield* AppConfig
    const order = [...new Set<ProviderId>([config.primary, ...config.fallbacks])]
    const sdks = {
      "gemini-flash": {
        settings: config.gemini,
        load: () => import("./gemini.ts").then((adapter) => adapter.makeGeminiProvider),
        timeoutMs: config.timeouts.gemini
      },
      "gpt-4o": {
        settings: config.openai,
        load: () => import("./openai.ts").then((adapter) => adapter.makeOpenAiProvider),
        timeoutMs: config.timeouts.openai
      },
      "claude-sonnet": {
        settings: config.anthropic,
        load: () => import("./anthropic.ts").then((adapter) => adapter.makeAnthropicProvider),
        timeoutMs: config.timeouts.anthropic
      }
    } as const
    const build = (id: ProviderId): Effect.Effect<Option.Option<AiProvider>> => {
      if (id === "local") return Effect.succeed(app.isProduction ? Option.none() : Option.some(makeLocalProvider()))
      const sdk = sdks[id]
      if (Option.isNone(sdk.settings.apiKey)) return Effect.succeedNone
      const options: SdkProviderOptions = {
        apiKey: sdk.settings.apiKey.value,
        model: sdk.settings.model,
        timeoutMs: sdk.timeoutMs,
        baseUrl: Option.getOrUndefined(sdk.settings.baseUrl)
      }
      return Effect.map(loadAdapter(sdk.load), (make) => Option.some(make(options)))
    }
    const providers: Array<AiProvider> = []
    for (const id of order) {
      const provider = yield* build(id)
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
