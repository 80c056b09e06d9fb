/**
 * Rate limits: sliding windows of calls per (rule, key), shared by every api instance through
 * Redis, or in this process's memory without it. Callers pick the rule (from
 * `AppConfig.rateLimits`) and the key ("user:<clerkId>", "ip:<addr>"):
 *
 *   const limiter = yield* RateLimiter
 *   const decision = yield* limiter.consume(config.rateLimits.wsMessageUser, `user:${clerkId}`)
 *   if (!decision.allowed) ... // decision.retryAfterMs
 *
 * `consume` never fails: an unreachable Redis allows the call (see redis.ts).
 */
import { type ConfigError, Context, Effect, Layer, Option } from "effect"
import type { Redis as IORedis } from "ioredis"
import { AppConfig } from "../config.ts"
import { recordRateLimitRefusal } from "../metrics.ts"
import { Redis } from "../redis.ts"
import { makeMemoryRateLimiter, type MemoryRateLimiterOptions } from "./memory.ts"
import type { RateLimiterShape } from "./model.ts"
import { makeRedisRateLimiter, type RedisRateLimiterOptions } from "./redis.ts"

export type { RateLimitSettings, RateRule } from "./config.ts"
export type { RateDecision, RateLimiterShape } from "./model.ts"
export { makeMemoryRateLimiter, type MemoryRateLimiter, type MemoryRateLimiterOptions } from "./memory.ts"
export { makeRedisRateLimiter, type RedisRateLimiterOptions } from "./redis.ts"

/** Every refusal counted in `wingmate_rate_limit_refusals` by the rule's name. */
const counted = (layer: Layer.Layer<RateLimiter>): Layer.Layer<RateLimiter> =>
  Layer.effect(
    RateLimiter,
    Effect.map(RateLimiter, (limiter) => ({
      ...limiter,
      consume: (rule, key, cost) =>
        Effect.tap(limiter.consume(rule, key, cost), (decision) =>
          decision.allowed ? Effect.void : recordRateLimitRefusal(rule.name)
        )
    }))
  ).pipe(Layer.provide(layer))

export class RateLimiter extends Context.Tag("RateLimiter")<RateLimiter, RateLimiterShape>() {
  /** This process's memory (dev, tests, a single instance). */
  static inMemory(options?: MemoryRateLimiterOptions): Layer.Layer<RateLimiter> {
    return Layer.effect(RateLimiter, makeMemoryRateLimiter(options))
  }

  /** Atomic (Lua) sliding windows on `client` (borrowed, not closed), shared by all api instances. */
  static redis(client: IORedis, options?: RedisRateLimiterOptions): Layer.Layer<RateLimiter> {
    return Layer.effect(RateLimiter, makeRedisRateLimiter(client, options))
  }

  /** Redis when `REDIS_URL` is set, else this process's memory (limits per instance, said once in the log). */
  static readonly layer: Layer.Layer<RateLimiter, ConfigError.ConfigError, AppConfig | Redis> = Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const redis = yield* Redis
      if (Option.isSome(redis.client)) return counted(RateLimiter.redis(redis.client.value))
      if (config.rateLimits.enabled && config.isProduction) {
        yield* Effect.logWarning("RateLimiter: REDIS_URL is unset, each api instance counts its own calls (in memory)")
      }
      return counted(RateLimiter.inMemory())
    })
  )
}
