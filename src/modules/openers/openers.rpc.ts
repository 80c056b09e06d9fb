/** `openers.*` procedures: thin over OpenersService, failures mapped as the HttpApi handlers do. */
import { Effect, Stream } from "effect"
import { aiFailuresToWire } from "../../core/ai/wire.ts"
import { withUser } from "../../domain/auth.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { decodeErrorToValidation } from "../../core/http/rpc.ts"
import { OpenersRpcs } from "../../domain/rpc.ts"
import { generationFailureToWire, OpenersService } from "./openers.service.ts"

export const OpenersRpcLive = OpenersRpcs.toLayer(
  Effect.gen(function* () {
    const openers = yield* OpenersService
    return OpenersRpcs.of({
      // The stream ends with the client: an interrupted call aborts the provider's request.
      "openers.generate": (payload) =>
        withUser((userId) => openers.generate(userId, payload)).pipe(
          Effect.map(Stream.catchAll((error) => Stream.fromEffect(generationFailureToWire(error)))),
          Effect.catchTags({
            ...aiFailuresToWire,
            DbError: Effect.die,
            StorageError: Effect.die
          }),
          Stream.unwrap
        ),
      "openers.list": ({ matchId, limit, cursor }) =>
        withUser((userId) => openers.list(userId, matchId, limit ?? DEFAULT_PAGE_LIMIT, cursor)).pipe(
          Effect.catchTags({ HttpApiDecodeError: decodeErrorToValidation, DbError: Effect.die })
        ),
      "openers.like": ({ openerId }) =>
        withUser((userId) => openers.like(userId, openerId)).pipe(Effect.catchTag("DbError", Effect.die)),
      "openers.unlike": ({ openerId }) =>
        withUser((userId) => openers.unlike(userId, openerId)).pipe(Effect.catchTag("DbError", Effect.die)),
      "openers.dislike": ({ openerId, reason }) =>
        withUser((userId) => openers.dislike(userId, openerId, reason)).pipe(Effect.catchTag("DbError", Effect.die)),
      "openers.undislike": ({ openerId }) =>
        withUser((userId) => openers.undislike(userId, openerId)).pipe(Effect.catchTag("DbError", Effect.die))
    })
  })
)
