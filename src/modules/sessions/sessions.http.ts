/**
 * `/api/v1/sessions`. Thin handlers over SessionsService; `events` streams the progress feed as
 * Server-Sent Events (`id:` = seq, resumable with `Last-Event-ID`), with a keep-alive comment.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Schedule, Stream } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { withUser } from "../../domain/auth.ts"
import { codeOf } from "../../domain/errors.ts"
import type { SessionStreamItem, SuggestionBatch } from "../../domain/sessions.ts"
import { SessionsService } from "./sessions.service.ts"
import { wireEventOf } from "./sessions.views.ts"
import { type BatchError, type BatchEvent, type BatchResult, batchErrorToWire } from "./sessions.suggest.ts"

const keepAlive = Stream.schedule(Stream.repeatValue(": keep-alive\n\n"), Schedule.spaced("15 seconds"))

const sseFrame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/** `Last-Event-ID` as a seq to resume after; anything else starts from a snapshot. */
const lastEventId = (header: string | undefined) => {
  const parsed = header === undefined ? Number.NaN : Number(header)
  return Number.isSafeInteger(parsed) && parsed >= 0 ? parsed : undefined
}

/** A followed session's item as SSE: `id:` is the seq, `event:` the tag in lower case. */
const itemFrame = (item: SessionStreamItem) => {
  const { seq, event, data } = wireEventOf(item)
  return `id: ${seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** The regeneration as SSE: delta, suggestion, then final `{batch}` or error `{code, message}`. */
const regenerationSse = (batch: number, events: Stream.Stream<BatchEvent | BatchResult, BatchError>) =>
  events.pipe(
    Stream.map((event) =>
      !("_tag" in event)
        ? sseFrame("final", { batch })
        : event._tag === "Delta"
          ? sseFrame("delta", { index: event.index, text: event.text })
          : sseFrame("suggestion", { index: event.index, suggestion: event.suggestion })
    ),
    Stream.catchAll((error) =>
      Stream.fromEffect(
        Effect.map(Effect.flip(batchErrorToWire(error)), (wire) =>
          sseFrame("error", { code: codeOf(wire), message: wire.message })
        )
      )
    ),
    Stream.merge(keepAlive, { haltStrategy: "left" }),
    Stream.encodeText
  )

export const SessionsHttpLive = HttpApiBuilder.group(WingmateApi, "sessions", (handlers) =>
  Effect.gen(function* () {
    const sessions = yield* SessionsService
    return handlers
      .handle("create", ({ payload }) =>
        withUser((userId) => sessions.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
      .handle("list", ({ urlParams }) =>
        withUser((userId) =>
          sessions.list(userId, urlParams.matchId, urlParams.limit ?? DEFAULT_PAGE_LIMIT, urlParams.cursor)
        ).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("get", ({ path }) =>
        withUser((userId) => sessions.get(userId, path.sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("events", ({ path, request }) =>
        withUser((userId) =>
          Effect.map(sessions.follow(userId, path.sessionId, lastEventId(request.headers["last-event-id"])), (items) =>
            HttpServerResponse.stream(
              items.pipe(
                Stream.map(itemFrame),
                Stream.catchAll(() => Stream.empty),
                Stream.merge(keepAlive, { haltStrategy: "left" }),
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
      .handle("patchTranscript", ({ path, payload }) =>
        withUser((userId) => sessions.patchTranscript(userId, path.sessionId, payload)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("regenerate", ({ path, payload, request }) =>
        withUser((userId) =>
          Effect.gen(function* () {
            const { batch, events } = yield* sessions.regenerate(userId, path.sessionId, payload)
            if ((request.headers["accept"] ?? "").includes("text/event-stream")) {
              return HttpServerResponse.stream(regenerationSse(batch, events), {
                contentType: "text/event-stream",
                headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
              })
            }
            const all = Chunk.toReadonlyArray(yield* Stream.runCollect(events).pipe(Effect.catchAll(batchErrorToWire)))
            const result: SuggestionBatch = {
              batch,
              suggestions: all.flatMap((event) =>
                "_tag" in event && event._tag === "Suggestion" ? [event.suggestion] : []
              )
            }
            return result
          })
        ).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("like", ({ path }) =>
        withUser((userId) => sessions.like(userId, path.sessionId, path.suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("unlike", ({ path }) =>
        withUser((userId) => sessions.unlike(userId, path.sessionId, path.suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("dislike", ({ path, payload }) =>
        withUser((userId) => sessions.dislike(userId, path.sessionId, path.suggestionId, payload?.reason)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
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
