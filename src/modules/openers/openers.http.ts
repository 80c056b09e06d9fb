/**
 * `/api/v1/magic-openers`. `generate` answers Server-Sent Events when the client asks for
 * `text/event-stream`, the saved openers in the envelope otherwise. A client that disconnects
 * interrupts the stream, which aborts the provider's request.
 */
import { HttpApiBuilder, HttpServerResponse } from "@effect/platform"
import { Chunk, Effect, Schedule, Stream } from "effect"
import type { AiError } from "../../core/ai/errors.ts"
import { aiErrorToWire, aiFailuresToWire } from "../../core/ai/wire.ts"
import { WingmateApi } from "../../domain/api.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { withUser } from "../../domain/auth.ts"
import { codeOf } from "../../domain/errors.ts"
import type { GenerationResult } from "../../domain/openers.ts"
import { type OpenerEvent, OpenersService } from "./openers.service.ts"

const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

const eventFrame = (event: OpenerEvent) => {
  switch (event._tag) {
    case "delta":
      return frame("delta", { index: event.index, text: event.text })
    case "done":
      return frame("done", { index: event.index, opener: event.opener })
    case "blocked":
      return frame("blocked", { index: event.index, reason: event.reason })
    case "final":
      return frame("final", event.meta)
  }
}

/** The event stream as SSE bytes: failures become an `error` event; a comment every 15 s keeps proxies from closing it. */
const toSse = (events: Stream.Stream<OpenerEvent, AiError>) =>
  events.pipe(
    Stream.map(eventFrame),
    Stream.catchAll((error) =>
      Stream.fromEffect(
        Effect.map(Effect.flip(aiErrorToWire(error)), (wire) =>
          frame("error", { code: codeOf(wire), message: wire.message })
        )
      )
    ),
    Stream.merge(Stream.schedule(Stream.repeatValue(": keep-alive\n\n"), Schedule.spaced("15 seconds")), {
      haltStrategy: "left"
    }),
    Stream.encodeText
  )

const collect = (events: Stream.Stream<OpenerEvent, AiError>) =>
  Effect.gen(function* () {
    const all = Chunk.toReadonlyArray(yield* Stream.runCollect(events))
    const final = all.find((event) => event._tag === "final")
    const result: GenerationResult = {
      openers: all.flatMap((event) => (event._tag === "done" ? [event.opener] : [])),
      meta:
        final?._tag === "final"
          ? final.meta
          : {
              batchId: "",
              provider: "unknown",
              model: "unknown",
              local: false,
              usage: { inputTokens: 0, outputTokens: 0 },
              costMicros: 0,
              blocked: 0
            }
    }
    return result
  })

export const OpenersHttpLive = HttpApiBuilder.group(WingmateApi, "openers", (handlers) =>
  Effect.gen(function* () {
    const openers = yield* OpenersService
    return handlers
      .handle("generate", ({ payload, request }) =>
        withUser((userId) =>
          Effect.gen(function* () {
            const events = yield* openers.generate(userId, payload)
            if ((request.headers["accept"] ?? "").includes("text/event-stream")) {
              return HttpServerResponse.stream(toSse(events), {
                contentType: "text/event-stream",
                headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
              })
            }
            return yield* collect(events)
          })
        ).pipe(
          Effect.catchTags({
            ...aiFailuresToWire,
            DbError: Effect.die,
            StorageError: Effect.die
          })
        )
      )
      .handle("list", ({ urlParams }) =>
        withUser((userId) =>
          openers.list(userId, urlParams.matchId, urlParams.limit ?? DEFAULT_PAGE_LIMIT, urlParams.cursor)
        ).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("like", ({ path }) =>
        withUser((userId) => openers.like(userId, path.openerId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("unlike", ({ path }) =>
        withUser((userId) => openers.unlike(userId, path.openerId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("dislike", ({ path, payload }) =>
        withUser((userId) => openers.dislike(userId, path.openerId, payload?.reason)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
  })
)
