/**
 * `/api/v1/sessions`. Thin handlers over SessionsService; `events` streams the progress feed as
 * Server-Sent Events (`id:` = seq, resumable with `Last-Event-ID`), with a keep-alive comment.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Effect, Schedule, Stream } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { CurrentUser } from "../../domain/auth.ts"
import { SessionsService } from "./sessions.service.ts"

export const SessionsHttpLive = HttpApiBuilder.group(WingmateApi, "sessions", (handlers) =>
  Effect.gen(function* () {
    const sessions = yield* SessionsService
    const withUser = <A, E, R>(f: (userId: string) => Effect.Effect<A, E, R>) =>
      Effect.flatMap(CurrentUser, (user) => f(user.id))
    return handlers
      .handle("create", ({ payload }) =>
        withUser((userId) => sessions.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
      .handle("list", ({ urlParams }) =>
        withUser((userId) => sessions.list(userId, urlParams.limit, urlParams.cursor)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("get", ({ path }) =>
        withUser((userId) => sessions.get(userId, path.sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("events", ({ path, request }) =>
        withUser((userId) =>
          Effect.map(sessions.events(userId, path.sessionId, request.headers["last-event-id"]), (frames) =>
            HttpServerResponse.stream(
              frames.pipe(
                Stream.catchAll(() => Stream.empty),
                Stream.merge(Stream.schedule(Stream.repeatValue(": keep-alive\n\n"), Schedule.spaced("15 seconds")), {
                  haltStrategy: "left"
                }),
                Stream.encodeText
              ),
              {
                contentType: "text/event-stream",
                headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
              }
            )
          )
        ).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("cancel", ({ path }) =>
        withUser((userId) => sessions.cancel(userId, path.sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("delete", ({ path }) =>
        withUser((userId) => sessions.remove(userId, path.sessionId)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
  })
)
