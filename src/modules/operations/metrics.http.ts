/** `GET /metrics` on the api (the HttpApi's `operations` group); the `Metrics` service is metrics.ts. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { AppConfig } from "../../core/config.ts"
import { ADMIN_CHALLENGE, adminDecision } from "../../core/http/admin.ts"
import { Metrics } from "../../core/metrics.ts"
import { WingmateApi } from "../../domain/api.ts"
import { NotFound, Unauthorized } from "../../domain/errors.ts"

/** The admin rule (src/core/http/admin.ts) as the HttpApi's failures: 401 with its challenge, or 404 NOT_FOUND when off. */
export const requireAdmin = Effect.gen(function* () {
  const config = yield* AppConfig
  const request = yield* HttpServerRequest.HttpServerRequest
  const decision = adminDecision(config, request.headers["authorization"])
  if (decision === "off") {
    return yield* new NotFound({ message: "Metrics are off: ADMIN_TOKEN is unset in production" })
  }
  if (decision === "unauthorized") {
    yield* HttpApp.appendPreResponseHandler((_request, response) =>
      Effect.succeed(HttpServerResponse.setHeader(response, "www-authenticate", ADMIN_CHALLENGE))
    )
    return yield* new Unauthorized({ message: "The admin token is required (Authorization: Bearer <ADMIN_TOKEN>)" })
  }
})

export const OperationsHttpLive = HttpApiBuilder.group(WingmateApi, "operations", (handlers) =>
  Effect.gen(function* () {
    const metrics = yield* Metrics
    return handlers.handle("metrics", () => Effect.zipRight(requireAdmin, metrics.scrape))
  })
)
