/**
 * `/api/v1/sessions`. Thin handlers over SessionsService. The streamed operations write SSE that a
 * stock EventSource stops on (core/http/sse.ts): `events` (`id:` = seq, resumable with
 * `Last-Event-ID`, 204 once past the terminal event) and `regenerate` (ids `<batch>:<n>`; a
 * reconnect never regenerates: 204).
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Chunk, Effect, Stream } from "effect"
import {
  failedOnDefect,
  lastEventIdOf,
  sseEnded,
  sseFrame,
  sseResponse,
  wantsEventStream
} from "../../core/http/sse.ts"
import { WingmateApi } from "../../domain/api.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { withUser } from "../../domain/auth.ts"
import { codeOf } from "../../domain/errors.ts"
import type { SessionStreamItem, SessionSuggestion, SuggestionBatch } from "../../domain/sessions.ts"
import { SessionsService } from "./sessions.service.ts"
import { wireEventOf } from "./sessions.views.ts"
import { type BatchEvent, type BatchResult, batchErrorToWire, type RegenerationFailure } from "./sessions.suggest.ts"

/** `Last-Event-ID` as a seq to resume after; anything else starts from a snapshot. */
const lastSeqOf = (header: string | undefined) => {
  const parsed = header === undefined ? Number.NaN : Number(header)
  return Number.isSafeInteger(parsed) && parsed >= 0 ? parsed : undefined
}

/** A followed session's item as SSE: `id:` is the seq, `event:` the tag in lower case. */
const itemFrame = (item: SessionStreamItem) => {
  const { seq, event, data } = wireEventOf(item)
  return sseFrame(String(seq), event, data)
}

/**
 * The regeneration as SSE, ids `<batch>:<n>`: delta, suggestion, blocked, then the terminal
 * `final` `{batch, suggestions}` or `failed` `{code, message, details?, batch, suggestions}`
 * (NOT_FOUND for a session deleted meanwhile, UNAUTHORIZED `account-erased` for an account erased
 * meanwhile).
 */
const regenerationSse = (batch: number, events: Stream.Stream<BatchEvent | BatchResult, RegenerationFailure>) => {
  let n = 0
  let suggestions: ReadonlyArray<SessionSuggestion> = []
  const id = () => `${batch}:${++n}`
  return events.pipe(
    Stream.map((event) => {
      if (!("_tag" in event)) return sseFrame(id(), "final", { batch, suggestions })
      switch (event._tag) {
        case "Delta":
          return sseFrame(id(), "delta", { index: event.index, text: event.text })
        case "Blocked":
          return sseFrame(id(), "blocked", { index: event.index, reason: event.reason })
        case "Suggestion":
          suggestions = [...suggestions, event.suggestion]
          return sseFrame(id(), "suggestion", { index: event.index, suggestion: event.suggestion })
      }
    }),
    Stream.catchAll((error) =>
      Stream.fromEffect(
        Effect.map(Effect.flip(batchErrorToWire(error)), (wire) =>
          sseFrame(id(), "failed", {
            code: codeOf(wire),
            message: wire.message,
            ...(wire.details === undefined ? {} : { details: wire.details }),
            batch,
            suggestions
          })
        )
      )
    ),
    failedOnDefect((code, message) => sseFrame(id(), "failed", { code, message, batch, suggestions }))
  )
}

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
          Effect.gen(function* () {
            const afterSeq = lastSeqOf(lastEventIdOf(request.headers))
            const ended =
              afterSeq === undefined
                ? false
                : yield* (
                    sessions
                      .followEnded(userId, path.sessionId, afterSeq)
                      // The progress feed unreadable for the check: followed as without the header.
                      .pipe(Effect.catchTag("ProgressBusError", () => Effect.succeed(false)))
                  )
            if (ended) {
              return sseEnded()
            }
            const items = yield* sessions.follow(userId, path.sessionId, afterSeq)
            return sseResponse(
              items.pipe(
                Stream.map(itemFrame),
                Stream.catchAll(() => Stream.empty)
              )
            )
          })
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
            const stream = wantsEventStream(request.headers)
            // A reconnect of an EventSource: never regenerated (nor counted) again.
            if (stream && lastEventIdOf(request.headers) !== undefined) return sseEnded()
            const { batch, events } = yield* sessions.regenerate(userId, path.sessionId, payload)
            if (stream) return sseResponse(regenerationSse(batch, events))
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
      .handle("undislike", ({ path }) =>
        withUser((userId) => sessions.undislike(userId, path.sessionId, path.suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("cancel", ({ path }) =>
        withUser((userId) => sessions.cancel(userId, path.sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("delete", ({ path }) =>
        withUser((userId) => sessions.remove(userId, path.sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
  })
)
