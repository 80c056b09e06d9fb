/**
 * `JsonBodies`: a request that carries a body must say it is JSON (or say nothing, as curl -d can),
 * and may not nest deeper than `MAX_JSON_DEPTH` (checked on the raw text, before any decoding).
 */
import { HttpServerRequest } from "@effect/platform"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { Effect, Layer } from "effect"
import { JsonBodies } from "../../domain/api.ts"
import { UnsupportedMediaType } from "../../domain/errors.ts"
import { exceedsJsonDepth, JSON_TOO_DEEP_MESSAGE } from "./json-depth.ts"

const carriesBody = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? "0") > 0

const isJson = (contentType: string | undefined) =>
  contentType === undefined || /^application\/([a-z0-9.+-]+\+)?json\s*(;|$)/i.test(contentType.trim())

/** The 400 VALIDATION_ERROR of a body nested too deep (the request's one issue, at its root). */
export const tooDeep = new HttpApiDecodeError({
  message: JSON_TOO_DEEP_MESSAGE,
  issues: [{ _tag: "Type", path: [], message: JSON_TOO_DEEP_MESSAGE }]
})

export const JsonBodiesLive = Layer.succeed(
  JsonBodies,
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    if (!carriesBody(request)) return
    if (!isJson(request.headers["content-type"])) {
      return yield* new UnsupportedMediaType({
        message: "Request bodies must be JSON (Content-Type: application/json)",
        details: { contentType: request.headers["content-type"] }
      })
    }
    // The text is read once and kept by the request: the payload decoder parses the same string.
    // A failure to read it is what the framework's own read would die with (413, 400 in the middleware).
    const text = yield* Effect.orDie(request.text)
    if (exceedsJsonDepth(text)) return yield* tooDeep
  })
)
