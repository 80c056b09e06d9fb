/**
 * The progress bus: job progress (state changes and deltas) published by whichever process runs
 * the job and streamed to listeners in any api process, resumable by seq. Redis in production
 * (state and a replay buffer kept per topic, pub/sub to every api process), this process's memory
 * in the embedded default. Feeds are typed with schemas: `bus.feed({ name, event, state })`.
 *
 *   const bus = yield* ProgressBus
 *   const progress = bus.feed({ name: "sessions", event: SessionEvent, state: SessionState,
 *     isTerminal: (event) => event._tag === "Completed" || event._tag === "Failed" })
 *   yield* progress.publish(sessionId, event, { state })       // in the worker
 *   progress.subscribe(sessionId, { afterSeq: lastEventId })    // a Stream, in the api (SSE, WS, RPC)
 *   yield* progress.clear(sessionId)                            // session deleted, account erased
 */
import { Config, ConfigError, Context, Duration, Effect, Layer, Option } from "effect"
import type { Redis as IORedis } from "ioredis"
import { AppConfig } from "../config.ts"
import { Redis } from "../redis.ts"
import { makeBus } from "./feed.ts"
import { makeMemoryBackend } from "./memory.ts"
import { type ProgressBusOptions, type ProgressBusShape, resolveOptions } from "./model.ts"
import { makeRedisBackend, type RedisProgressOptions } from "./redis.ts"

export {
  ProgressBusError,
  type ProgressBusOptions,
  type ProgressBusShape,
  type ProgressEvent,
  type ProgressFeed,
  type ProgressFeedSpec,
  type ProgressItem,
  type ProgressPublisher,
  type ProgressReducer,
  type ProgressSnapshot,
  type PublishOptions,
  type SubscribeOptions
} from "./model.ts"
export { progressRedisKeys, type RedisProgressOptions } from "./redis.ts"

/** `PROGRESS_REPLAY_LIMIT` and `PROGRESS_TTL_SECONDS`, to be merged into `AppConfig`. */
export const ProgressConfig = Config.all({
  replayLimit: Config.integer("PROGRESS_REPLAY_LIMIT").pipe(
    Config.validate({ message: "Expected an integer from 1 to 100000", validation: (n) => n >= 1 && n <= 100_000 }),
    Config.withDefault(500)
  ),
  ttlSeconds: Config.integer("PROGRESS_TTL_SECONDS").pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(24 * 60 * 60)
  )
})

export class ProgressBus extends Context.Tag("ProgressBus")<ProgressBus, ProgressBusShape>() {
  /** This process's memory: listeners in this process only (dev, unit tests). */
  static inMemory(options?: ProgressBusOptions): Layer.Layer<ProgressBus> {
    return Layer.scoped(
      ProgressBus,
      Effect.map(makeMemoryBackend(resolveOptions(options)), (backend) => makeBus("memory", backend))
    )
  }

  /**
   * Redis: commands on `client` (borrowed, not closed), subscriptions on a duplicate of it that
   * this layer opens and closes. Does not wait for Redis: a subscription waits for its SUBSCRIBE.
   */
  static redis(client: IORedis, options?: ProgressBusOptions & RedisProgressOptions): Layer.Layer<ProgressBus> {
    return Layer.scoped(
      ProgressBus,
      Effect.map(
        makeRedisBackend(client, {
          ...resolveOptions(options),
          keyPrefix: options?.keyPrefix ?? "wingmate:progress:",
          connectionName: options?.connectionName ?? "wingmate-progress-subscriber"
        }),
        (backend) => makeBus("redis", backend)
      )
    )
  }

  /**
   * The layer the processes use: Redis when `REDIS_URL` is set, else this process's memory (said
   * once in the log; refused in production unless ALLOW_EMBEDDED_IN_PRODUCTION=true, since a
   * worker's progress would never reach the api processes).
   */
  static readonly layer: Layer.Layer<ProgressBus, ConfigError.ConfigError, AppConfig | Redis> = Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const redis = yield* Redis
      const progress = yield* ProgressConfig
      const options: ProgressBusOptions = {
        replayLimit: progress.replayLimit,
        ttl: Duration.seconds(progress.ttlSeconds)
      }
      if (Option.isSome(redis.client)) {
        yield* Effect.logInfo(
          `ProgressBus: Redis (replay ${progress.replayLimit} events, topics kept ${progress.ttlSeconds} s)`
        )
        return ProgressBus.redis(redis.client.value, options)
      }
      if (config.isProduction && !config.allowEmbeddedInProduction) {
        return yield* Effect.fail(
          ConfigError.MissingData(
            ["REDIS_URL"],
            "Required in production: progress reaches other processes through Redis (an in-process bus is refused unless ALLOW_EMBEDDED_IN_PRODUCTION=true)"
          )
        )
      }
      yield* Effect.logWarning("ProgressBus: REDIS_URL is unset, progress stays in this process (in-memory bus)")
      return ProgressBus.inMemory(options)
    })
  )
}
