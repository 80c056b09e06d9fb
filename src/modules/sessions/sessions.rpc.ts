/** `sessions.*` procedures: thin over SessionsService, failures mapped as the HttpApi handlers do. */
import { Effect, Stream } from "effect"
import { decodeErrorToValidation } from "../../core/http/rpc.ts"
import { withUser } from "../../domain/auth.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { ServiceUnavailable } from "../../domain/errors.ts"
import { type RegenerationEvent, SessionsRpcs } from "../../domain/rpc.ts"
import { SessionsService } from "./sessions.service.ts"
import { type BatchEvent, type BatchResult, batchErrorToWire } from "./sessions.suggest.ts"

const regenerationEvent =
  (batch: number) =>
  (event: BatchEvent | BatchResult): RegenerationEvent =>
    !("_tag" in event) ? { _tag: "Final", batch } : event

export const SessionsRpcLive = SessionsRpcs.toLayer(
  Effect.gen(function* () {
    const sessions = yield* SessionsService
    return SessionsRpcs.of({
      "sessions.create": (payload) =>
        withUser((userId) => sessions.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        ),
      "sessions.list": ({ matchId, limit, cursor }) =>
        withUser((userId) => sessions.list(userId, matchId, limit ?? DEFAULT_PAGE_LIMIT, cursor)).pipe(
          Effect.catchTags({ HttpApiDecodeError: decodeErrorToValidation, DbError: Effect.die })
        ),
      "sessions.get": ({ sessionId }) =>
        withUser((userId) => sessions.get(userId, sessionId)).pipe(Effect.catchTag("DbError", Effect.die)),
      "sessions.follow": ({ sessionId, afterSeq }) =>
        withUser((userId) => sessions.follow(userId, sessionId, afterSeq)).pipe(
          Effect.map(
            Stream.catchTags({
              // The client resumes with the last seq it saw.
              ProgressBusError: () =>
                Stream.fail(
                  new ServiceUnavailable({ message: "The progress feed is unavailable; resume with afterSeq" })
                ),
              DbError: Stream.die
            })
          ),
          Effect.catchTag("DbError", Effect.die),
          Stream.unwrap
        ),
      "sessions.regenerate": ({ sessionId, ...input }) =>
        withUser((userId) => sessions.regenerate(userId, sessionId, input)).pipe(
          Effect.map(({ batch, events }) =>
            events.pipe(
              Stream.map(regenerationEvent(batch)),
              Stream.catchAll((error) => Stream.fromEffect(batchErrorToWire(error)))
            )
          ),
          Effect.catchTag("DbError", Effect.die),
          Stream.unwrap
        ),
      "sessions.patchTranscript": ({ sessionId, messages }) =>
        withUser((userId) => sessions.patchTranscript(userId, sessionId, { messages })).pipe(
          Effect.catchTag("DbError", Effect.die)
        ),
      "sessions.like": ({ sessionId, suggestionId }) =>
        withUser((userId) => sessions.like(userId, sessionId, suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        ),
      "sessions.unlike": ({ sessionId, suggestionId }) =>
        withUser((userId) => sessions.unlike(userId, sessionId, suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        ),
      "sessions.dislike": ({ sessionId, suggestionId, reason }) =>
        withUser((userId) => sessions.dislike(userId, sessionId, suggestionId, reason)).pipe(
          Effect.catchTag("DbError", Effect.die)
        ),
      "sessions.undislike": ({ sessionId, suggestionId }) =>
        withUser((userId) => sessions.undislike(userId, sessionId, suggestionId)).pipe(
          Effect.catchTag("DbError", Effect.die)
        ),
      "sessions.cancel": ({ sessionId }) =>
        withUser((userId) => sessions.cancel(userId, sessionId)).pipe(Effect.catchTag("DbError", Effect.die)),
      "sessions.delete": ({ sessionId }) =>
        withUser((userId) => sessions.remove(userId, sessionId)).pipe(Effect.catchTag("DbError", Effect.die))
    })
  })
)
