/** `/api/v1/users/me`: the caller's own account. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { ClerkIdentity, CurrentUser } from "../../domain/auth.ts"
import { Unauthorized } from "../../domain/errors.ts"
import { UsersService } from "./users.service.ts"

// The user vanished between authentication and the handler: it was just erased.
const erasedMeanwhile = () =>
  Effect.fail(new Unauthorized({ message: "This account was erased", details: { reason: "account-erased" } }))

export const UsersHttpLive = HttpApiBuilder.group(WingmateApi, "users", (handlers) =>
  Effect.gen(function* () {
    const users = yield* UsersService
    return handlers
      .handle("me", () =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.profile(user.id)),
          Effect.catchTags({ NotFound: erasedMeanwhile, DbError: Effect.die })
        )
      )
      .handle("updateMe", ({ payload }) =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.updateProfile(user.id, payload)),
          Effect.orDie
        )
      )
      .handle("eraseMe", () =>
        ClerkIdentity.pipe(
          Effect.flatMap((identity) => users.erase(identity.clerkId)),
          Effect.orDie
        )
      )
  })
)
