/** `matches.*` procedures: thin over MatchesService, failures mapped as the HttpApi handlers do. */
import { Effect } from "effect"
import { decodeErrorToValidation } from "../../core/http/rpc.ts"
import { withUser } from "../../domain/auth.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { MatchesRpcs } from "../../domain/rpc.ts"
import { MatchesService } from "./matches.service.ts"

export const MatchesRpcLive = MatchesRpcs.toLayer(
  Effect.gen(function* () {
    const matches = yield* MatchesService
    return MatchesRpcs.of({
      "matches.create": (payload) =>
        withUser((userId) => matches.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        ),
      "matches.list": ({ limit, cursor }) =>
        withUser((userId) => matches.list(userId, limit ?? DEFAULT_PAGE_LIMIT, cursor)).pipe(
          Effect.catchTags({ HttpApiDecodeError: decodeErrorToValidation, DbError: Effect.die })
        ),
      "matches.get": ({ matchId }) =>
        withUser((userId) => matches.view(userId, matchId)).pipe(Effect.catchTag("DbError", Effect.die)),
      "matches.update": ({ matchId, ...patch }) =>
        withUser((userId) => matches.update(userId, matchId, patch)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        ),
      "matches.delete": ({ matchId }) =>
        withUser((userId) => matches.remove(userId, matchId)).pipe(Effect.catchTag("DbError", Effect.die))
    })
  })
)
