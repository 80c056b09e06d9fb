/** Liveness (the process answers) and readiness (its dependencies answer). */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Duration, Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { ServiceUnavailable } from "../../domain/errors.ts"
import { Db } from "../../core/db/db.ts"
import { Redis } from "../../core/redis.ts"

export const HealthHttpLive = HttpApiBuilder.group(WingmateApi, "health", (handlers) =>
  Effect.gen(function* () {
    const db = yield* Db
    const redis = yield* Redis
    const database = db.ping.pipe(
      Effect.timeout(Duration.seconds(2)),
      Effect.as("ok" as const),
      Effect.catchAll((error) =>
        Effect.logWarning("Readiness: database check failed", error).pipe(Effect.as("failed" as const))
      )
    )
    const cache = redis.ping.pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("Readiness: redis check failed", error).pipe(Effect.as("failed" as const))
      )
    )
    return handlers
      .handle("live", () => Effect.sync(() => ({ status: "ok" as const, uptimeSeconds: Math.round(process.uptime()) })))
      .handle("ready", () =>
        Effect.gen(function* () {
          const checks = yield* Effect.all({ database, redis: cache }, { concurrency: "unbounded" })
          if (checks.database === "failed" || checks.redis === "failed") {
            return yield* new ServiceUnavailable({ message: "A dependency is not reachable", details: { checks } })
          }
          return { status: "ready" as const, checks }
        })
      )
  })
)
