/**
 * `JsonBodies`: a request that carries a body must say it is JSON (or say nothing, as curl -d can),
 * and must keep within the JSON limits of json-limits.ts (checked on the raw text, before any decoding).
 */
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { Effect, Layer } from "effect"
import { JsonBodies } from "../../domain/api.ts"
import { UnsupportedMediaType } from "../../domain/errors.ts"
import { jsonLimitExceeded } from "./json-limits.ts"
import { hasInvalidUtf8 } from "./utf8-guard.ts"

const carriesBody = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? "0") > 0

/**
 * application/json only: the HttpApi's payload decoder parses nothing else as JSON (a `+json` type
 * is read as bytes, which the body read here has already consumed: such a request hung).
 */
const isJson = (contentType: string | undefined) =>
  contentType === undefined || /^application\/json\s*(;|$)/i.test(contentType.trim())

/** The 400 VALIDATION_ERROR of a body beyond the JSON limits: one issue, at its root. */
export const beyondJsonLimits = (message: string) =>
  new HttpApiDecodeError({ message, issues: [{ _tag: "Type", path: [], message }] })

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
    // API-wide, so before authentication too: the body is capped by MAX_BODY_BYTES (checked on
    // content-length first) and the scan is linear. The text is read once and kept by the request:
    // the payload decoder parses the same string.
    // A failure to read it is what the framework's own read would die with (413, 400 in the middleware).
    const text = yield* Effect.orDie(request.text)
    // Read through a decoder that replaces what is not UTF-8: the bytes were checked as they came.
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    if (hasInvalidUtf8(incoming)) {
      return yield* Effect.die(
        new HttpServerError.RequestError({
          request,
          reason: "Decode",
          cause: new SyntaxError("The request body is not valid UTF-8")
        })
      )
    }
    const exceeded = jsonLimitExceeded(text)
    if (exceeded !== undefined) return yield* beyondJsonLimits(exceeded)
  })
)
