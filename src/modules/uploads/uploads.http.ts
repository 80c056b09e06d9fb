/** `/api/v1/uploads`: start an upload (a pre-signed URL), and read its status. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { CurrentUser } from "../../domain/auth.ts"
import { UploadsService } from "./uploads.service.ts"

export const UploadsHttpLive = HttpApiBuilder.group(WingmateApi, "uploads", (handlers) =>
  Effect.gen(function* () {
    const uploads = yield* UploadsService
    return handlers
      .handle("create", ({ payload }) =>
        CurrentUser.pipe(
          Effect.flatMap((user) => uploads.create(user.id, payload)),
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
      .handle("get", ({ path }) =>
        CurrentUser.pipe(
          Effect.flatMap((user) => uploads.status(user.id, path.uploadId)),
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
      )
  })
)
