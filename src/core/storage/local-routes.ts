/**
 * The local storage's upload (PUT) and download (GET) routes, mounted only when storage is the
 * local disk. Raw routes: their bodies are image bytes, not JSON, and they answer failures with
 * the envelope themselves.
 */
import { HttpLayerRouter } from "@effect/platform"
import { Effect, Layer, Option } from "effect"
import { LOCAL_STORAGE_PATH, LocalStorageHttp } from "./local.ts"

export const LocalStorageRoutes = Layer.unwrapEffect(
  Effect.map(Effect.serviceOption(LocalStorageHttp), (local) =>
    Option.match(local, {
      onNone: () => Layer.empty,
      onSome: (http) =>
        Layer.mergeAll(
          HttpLayerRouter.add("PUT", `${LOCAL_STORAGE_PATH}/*`, http.upload),
          HttpLayerRouter.add("GET", `${LOCAL_STORAGE_PATH}/*`, http.download)
        )
    })
  )
)
