/** `uploads.*` procedures: thin over UploadsService, as the HttpApi handlers. */
import { Effect } from "effect"
import { withUser } from "../../domain/auth.ts"
import { UploadsRpcs } from "../../domain/rpc.ts"
import { UploadsService } from "./uploads.service.ts"

export const UploadsRpcLive = UploadsRpcs.toLayer(
  Effect.gen(function* () {
    const uploads = yield* UploadsService
    return UploadsRpcs.of({
      "uploads.create": (payload) =>
        withUser((userId) => uploads.create(userId, payload)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        ),
      "uploads.get": ({ uploadId }) =>
        withUser((userId) => uploads.status(userId, uploadId)).pipe(
          Effect.catchTags({ DbError: Effect.die, StorageError: Effect.die })
        )
    })
  })
)
