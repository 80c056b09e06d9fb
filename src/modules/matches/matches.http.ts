/** `/api/v1/matches`: thin handlers over MatchesService. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { DEFAULT_PAGE_LIMIT } from "../../domain/pagination.ts"
import { withUser } from "../../domain/auth.ts"
import { MatchesService } from "./matches.service.ts"

export const MatchesHttpLive = HttpApiBuilder.group(WingmateApi, "matches", (handlers) =>
  Effect.gen(function* () {
    const matches = yield* MatchesService
    return handlers
      .handle("create", ({ payload }) =>
        withUser((userId) => matches.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
      .handle("list", ({ urlParams }) =>
        withUser((userId) => matches.list(userId, urlParams.limit ?? DEFAULT_PAGE_LIMIT, urlParams.cursor)).pipe(
          Effect.catchTag("DbError", Effect.die)
        )
      )
      .handle("get", ({ path }) =>
        withUser((userId) => matches.view(userId, path.matchId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
      .handle("update", ({ path, payload }) =>
        withUser((userId) => matches.update(userId, path.matchId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
      .handle("delete", ({ path }) =>
        withUser((userId) => matches.remove(userId, path.matchId)).pipe(Effect.catchTag("DbError", Effect.die))
      )
  })
)
