/** `JsonBodies`: a request that carries a body must say it is JSON (or say nothing, as curl -d can). */
import { HttpServerRequest } from "@effect/platform"
import { Effect, Layer } from "effect"
import { JsonBodies } from "../../domain/api.ts"
import { UnsupportedMediaType } from "../../domain/errors.ts"

const carriesBody = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? "0") > 0

const isJson = (contentType: string | undefined) =>
  contentType === undefined || /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(contentType.trim())

export const JsonBodiesLive = Layer.succeed(
  JsonBodies,
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    carriesBody(request) && !isJson(request.headers["content-type"])
      ? Effect.fail(
          new UnsupportedMediaType({
            message: "Request bodies must be JSON (Content-Type: application/json)",
            details: { contentType: request.headers["content-type"] }
          })
        )
      : Effect.void
  )
)
