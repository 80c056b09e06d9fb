/** `users.*` procedures: the caller's own account. */
import { Effect } from "effect"
import { ClerkIdentity, CurrentUser } from "../../domain/auth.ts"
import { accountErased } from "../../domain/errors.ts"
import { AccountRpcs, UsersRpcs } from "../../domain/rpc.ts"
import { UsersService } from "./users.service.ts"

// The user vanished between authentication and the handler: it was just erased.
const erasedMeanwhile = () => Effect.fail(accountErased())

export const UsersRpcLive = UsersRpcs.toLayer(
  Effect.gen(function* () {
    const users = yield* UsersService
    return UsersRpcs.of({
      "users.me": () =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.profile(user.id)),
          Effect.catchTags({ NotFound: erasedMeanwhile, DbError: Effect.die })
        ),
      "users.updateMe": (patch) =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.updateProfile(user.id, patch)),
          Effect.catchTags({ NotFound: erasedMeanwhile, DbError: Effect.die })
        ),
      "users.exportMe": () =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.exportData(user.id)),
          Effect.catchTags({ NotFound: erasedMeanwhile, DbError: Effect.die })
        )
    })
  })
)

/** `users.eraseMe`: on the verified Clerk identity alone, so a second call erases (nothing) again. */
export const AccountRpcLive = AccountRpcs.toLayer(
  Effect.gen(function* () {
    const users = yield* UsersService
    return AccountRpcs.of({
      "users.eraseMe": () =>
        ClerkIdentity.pipe(
          Effect.flatMap((identity) => users.erase(identity.clerkId)),
          Effect.orDie
        )
    })
  })
)
