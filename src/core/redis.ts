/**
 * Redis, when `REDIS_URL` is set. Services that can use it (queue, progress bus, rate limits)
 * fall back to in-process forms when it is absent, so the client is optional here.
 */
import { Context, Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { Redis as IORedis } from "ioredis"
import { AppConfig } from "./config.ts"

export class RedisError extends Schema.TaggedError<RedisError>()("RedisError", {
  operation: Schema.String,
  cause: Schema.Defect
}) {}

export interface RedisShape {
  readonly client: Option.Option<IORedis>
  /** `not_configured` without REDIS_URL; otherwise a PING bounded by a short timeout. */
  readonly ping: Effect.Effect<"ok" | "not_configured", RedisError>
}

export class Redis extends Context.Tag("Redis")<Redis, RedisShape>() {
  static readonly none: Layer.Layer<Redis> = Layer.succeed(Redis, {
    client: Option.none(),
    ping: Effect.succeed("not_configured" as const)
  })

  static connect(url: Redacted.Redacted) {
    return Layer.scoped(
      Redis,
      Effect.gen(function* () {
        const client = yield* Effect.acquireRelease(
          Effect.sync(
            () =>
              new IORedis(Redacted.value(url), {
                // Fail fast while Redis is down instead of queueing commands forever.
                maxRetriesPerRequest: 2,
                enableOfflineQueue: true
              })
          ),
          (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
        )
        // ioredis reconnects on its own; an unhandled "error" event would crash the process, and
        // readiness reports an unreachable Redis, so boot does not wait for it.
        client.on("error", () => undefined)
        const ping = Effect.tryPromise({
          try: () => client.ping(),
          catch: (cause) => new RedisError({ operation: "ping", cause })
        }).pipe(
          Effect.timeoutFail({
            duration: Duration.seconds(2),
            onTimeout: () => new RedisError({ operation: "ping", cause: new Error("timed out") })
          }),
          Effect.as("ok" as const)
        )
        return { client: Option.some(client), ping }
      })
    )
  }

  static readonly layer = Layer.unwrapEffect(
    Effect.map(AppConfig, (config) =>
      Option.match(config.redisUrl, { onNone: () => Redis.none, onSome: (url) => Redis.connect(url) })
    )
  )
}
