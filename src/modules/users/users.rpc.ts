/** `users.*` procedures: the caller's own account. */
import { Effect } from "effect"
import { CurrentUser } from "../../domain/auth.ts"
import { Unauthorized } from "../../domain/errors.ts"
import { UsersRpcs } from "../../domain/rpc.ts"
import { UsersService } from "./users.service.ts"

export const UsersRpcLive = UsersRpcs.toLayer(
  Effect.gen(function* () {
    const users = yield* UsersService
    return UsersRpcs.of({
      "users.me": () =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.profile(user.id)),
          Effect.catchTags({
            // The user vanished between authentication and the handler: it was just erased.
            NotFound: () =>
              Effect.fail(
                new Unauthorized({ message: "This account was erased", details: { reason: "account-erased" } })
              ),
            DbError: Effect.die
          })
        )
    })
  })
)
