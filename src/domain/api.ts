/**
 * The whole HTTP contract: every group under `/api/v1` (plus the health probes), with the
 * failures the server itself can answer on any route.
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import {
  BadRequestEnvelope,
  DecodeErrorEnvelope,
  InternalErrorEnvelope,
  InvalidJsonEnvelope,
  PayloadTooLargeEnvelope,
  RateLimitedEnvelope,
  RouteNotFoundEnvelope,
  UnsupportedMediaTypeEnvelope
} from "./errors.ts"
import { withBearerChallenge } from "./auth.ts"
import { HealthGroup } from "./health.ts"
import { withIdempotencyKeys } from "./idempotency.ts"
import { MatchesGroup } from "./matches.ts"
import { OpenersGroup } from "./openers.ts"
import { OperationsGroup } from "./operations.ts"
import { SessionsGroup } from "./sessions.ts"
import { UploadsGroup } from "./uploads.ts"
import { UsersGroup } from "./users.ts"
import { WebhooksGroup } from "./webhooks.ts"
import { withResponseHeaders } from "./response-headers.ts"
import { withoutSchemaMarkers } from "./schema-ids.ts"
import { withUnroutablePaths } from "./unroutable-paths.ts"

/**
 * Not open source. OpenAPI 3.1 asks for a URL or an SPDX identifier: `LicenseRef-` is SPDX's form
 * for a license of one's own (the generator's type knows only `url`, hence the wider type).
 */
const License: OpenApi.OpenAPISpecLicense & { readonly identifier: string } = {
  name: "Proprietary",
  identifier: "LicenseRef-Proprietary"
}

/**
 * `HttpApi.make` fixes the API's error schema to `HttpApiDecodeError`'s own wire shape, and the
 * builder encodes every request decode failure with it. Swapping that (internal, pinned with
 * @effect/platform 0.97) property for the envelope puts `VALIDATION_ERROR` on the wire and in
 * OpenAPI; test/integration/http/errors.test.ts guards it.
 */
export const makeApi = <const Id extends string>(id: Id) => {
  const api = HttpApi.make(id)
  Object.defineProperty(api, "errorSchema", { value: DecodeErrorEnvelope })
  return api
}

/**
 * Request bodies are JSON: a body of another media type answers 415 before any decoding (the
 * framework would otherwise hand text or bytes to the payload schema), and one nested too deep 400.
 */
export class JsonBodies extends HttpApiMiddleware.Tag<JsonBodies>()("JsonBodies", {
  failure: Schema.Union(UnsupportedMediaTypeEnvelope, DecodeErrorEnvelope)
}) {}

// Every route under /api/v1 may answer 429 RATE_LIMITED (src/core/http/rate-limit.ts); the health probes never do.
export class WingmateApi extends makeApi("wingmate")
  .add(UsersGroup.addError(RateLimitedEnvelope))
  .add(MatchesGroup.addError(RateLimitedEnvelope))
  .add(OpenersGroup.addError(RateLimitedEnvelope))
  .add(WebhooksGroup.addError(RateLimitedEnvelope))
  .add(UploadsGroup.addError(RateLimitedEnvelope))
  .add(SessionsGroup.addError(RateLimitedEnvelope))
  .prefix("/api/v1")
  .add(HealthGroup)
  .add(OperationsGroup)
  .addError(InvalidJsonEnvelope)
  .addError(BadRequestEnvelope)
  .addError(PayloadTooLargeEnvelope)
  .addError(InternalErrorEnvelope)
  .middleware(JsonBodies)
  .annotate(OpenApi.Title, "Wingmate API")
  .annotate(OpenApi.Version, "1.0.0")
  .annotate(OpenApi.License, License)
  // Relative: the API is served by the origin that serves this document (dev, staging or production).
  .annotate(OpenApi.Servers, [{ url: "/", description: "The origin serving this document" }])
  .annotate(HttpApi.AdditionalSchemas, [RouteNotFoundEnvelope])
  // One transform per API (a second annotation would replace the first): composed here.
  .annotate(OpenApi.Transform, (spec) =>
    withoutSchemaMarkers(withResponseHeaders(withUnroutablePaths(withIdempotencyKeys(withBearerChallenge(spec)))))
  )
  .annotate(
    OpenApi.Description,
    "Backend of the Wingmate dating assistant. Every response is an envelope: " +
      "`{ success: true, data }` or `{ success: false, error: { code, message, details? } }`."
  ) {}
