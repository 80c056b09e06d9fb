/** `sessions.*` procedures: thin over SessionsService, failures mapped as the HttpApi handlers do. */
import { Effect, Stream } from "effect"
import { withUser } from "../../domain/auth.ts"
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
        )
    })
  })
)
