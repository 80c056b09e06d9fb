/**
 * The local storage's upload (PUT) and download (GET) routes, mounted only when storage is the
 * local disk. Raw routes: their bodies are image bytes, not JSON, and they answer failures with
 * the envelope themselves. A PUT under an erased account's prefix is refused (its tombstone).
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect, Layer, Option } from "effect"
import { Forbidden, ServiceUnavailable } from "../../domain/errors.ts"
import { isConnectionLost } from "../db/db.ts"
import { Tombstones } from "../erasure.ts"
import { LOCAL_STORAGE_PATH, LocalStorageHttp, type UploadAdmission } from "./local.ts"
import { StorageError, userIdOfKey } from "./model.ts"

export const LocalStorageRoutes = Layer.unwrapEffect(
  Effect.gen(function* () {
    const local = yield* Effect.serviceOption(LocalStorageHttp)
    if (Option.isNone(local)) return Layer.empty
    const tombstones = yield* Tombstones
    const admit: UploadAdmission = (key) => {
      const userId = userIdOfKey(key)
      if (userId === undefined) return Effect.void
      return tombstones.isErased(userId).pipe(
        // A lost database connection is an outage (503, try again), as on every other route.
        Effect.mapError((cause) =>
          isConnectionLost(cause)
            ? new ServiceUnavailable({ message: "The database is unavailable; try again shortly" })
            : new StorageError({ operation: "local.admit", cause })
        ),
        Effect.flatMap((erased) =>
          erased
            ? Effect.fail(
                new Forbidden({
                  message: "This upload URL's account was erased",
                  details: { reason: "account-erased" }
                })
              )
            : Effect.void
        )
      )
    }
    return Layer.mergeAll(
      HttpLayerRouter.add("PUT", `${LOCAL_STORAGE_PATH}/*`, local.value.upload(admit)),
      HttpLayerRouter.add("GET", `${LOCAL_STORAGE_PATH}/*`, local.value.download)
    )
  })
)
