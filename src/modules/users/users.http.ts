/** `/api/v1/users/me`: the caller's own account. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { ClerkIdentity, CurrentUser } from "../../domain/auth.ts"
import { accountErased, type RateLimited } from "../../domain/errors.ts"
import { UsersService } from "./users.service.ts"

// The user vanished between authentication and the handler: it was just erased.
const erasedMeanwhile = () => Effect.fail(accountErased())

/** A refusal of the export's own limit: 429 with `Retry-After`, as the REST limits answer. */
const retryAfter = (error: RateLimited) =>
  Effect.zipRight(
    HttpApp.appendPreResponseHandler((_request, response) => {
      const details = error.details
      const ms =
        typeof details === "object" && details !== null && "retryAfterMs" in details
          ? Number(details.retryAfterMs)
          : 1_000
      const seconds = Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1_000)) : 1
      return Effect.succeed(HttpServerResponse.setHeader(response, "retry-after", String(seconds)))
    }),
    Effect.fail(error)
  )

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
          Effect.catchTags({ NotFound: erasedMeanwhile, DbError: Effect.die })
        )
      )
      .handle("exportMe", () =>
        CurrentUser.pipe(
          Effect.flatMap((user) => users.exportData(user.id)),
          Effect.catchTags({ NotFound: erasedMeanwhile, RateLimited: retryAfter, DbError: Effect.die })
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
