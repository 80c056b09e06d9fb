/**
 * `/api/v1/magic-openers`. `generate` answers Server-Sent Events when the client asks for
 * `text/event-stream`, the saved openers in the envelope otherwise. A client that disconnects
 * interrupts the stream, which aborts the provider's request. Each event's id is
 * `<batchId>:<n>`; a reconnect (any `Last-Event-ID`) never generates again: it answers 204.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Chunk, Effect, Stream } from "effect"
import { aiFailuresToWire } from "../../core/ai/wire.ts"
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
import type { GenerationResult, Opener } from "../../domain/openers.ts"
import {
  type GenerationFailure,
  generationFailureToWire,
  newBatchId,
  type OpenerEvent,
  OpenersService
} from "./openers.service.ts"

/** What an event stream has said so far: its count (the ids) and the openers saved. */
interface Said {
  readonly n: number
  readonly openers: ReadonlyArray<Opener>
}

const eventFrame = (id: string, event: OpenerEvent, openers: ReadonlyArray<Opener>) => {
  switch (event._tag) {
    case "delta":
      return sseFrame(id, "delta", { index: event.index, text: event.text })
    case "done":
      return sseFrame(id, "done", { index: event.index, opener: event.opener })
    case "blocked":
      return sseFrame(id, "blocked", { index: event.index, reason: event.reason })
    case "final":
      return sseFrame(id, "final", { ...event.meta, openers })
  }
}

/**
 * The events as SSE frames, each with the id `<batchId>:<n>`; a failure becomes the terminal
 * `failed` event (`{code, message, details?, openers}`: the AI chain's failure, NOT_FOUND for a
 * match deleted meanwhile, UNAUTHORIZED `account-erased` for an account erased meanwhile), `final`
 * carries the meta and the openers saved.
 */
const toSse = (batchId: string, events: Stream.Stream<OpenerEvent, GenerationFailure>) => {
  let said: Said = { n: 0, openers: [] }
  return events.pipe(
    Stream.map((event) => {
      said = {
        n: said.n + 1,
        openers: event._tag === "done" ? [...said.openers, event.opener] : said.openers
      }
      return eventFrame(`${batchId}:${said.n}`, event, said.openers)
    }),
    Stream.catchAll((error) =>
      Stream.fromEffect(
        Effect.map(Effect.flip(generationFailureToWire(error)), (wire) =>
          sseFrame(`${batchId}:${said.n + 1}`, "failed", {
            code: codeOf(wire),
            message: wire.message,
            ...(wire.details === undefined ? {} : { details: wire.details }),
            openers: said.openers
          })
        )
      )
    ),
    failedOnDefect((code, message) =>
      sseFrame(`${batchId}:${said.n + 1}`, "failed", { code, message, openers: said.openers })
    )
  )
}

const collect = (events: Stream.Stream<OpenerEvent, GenerationFailure>) =>
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
            const stream = wantsEventStream(request.headers)
            // A reconnect of an EventSource: the generation it followed ended, or stopped with the
            // connection. Never generated (nor counted) again, whoever's batch the id names.
            if (stream && lastEventIdOf(request.headers) !== undefined) return sseEnded()
            const batchId = newBatchId()
            const events = yield* openers.generate(userId, payload, batchId)
            if (stream) return sseResponse(toSse(batchId, events))
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
      .handle("undislike", ({ path }) =>
        withUser((userId) => openers.undislike(userId, path.openerId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
  })
)
