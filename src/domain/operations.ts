/**
 * Operator routes in the HttpApi: `GET /metrics` (Prometheus text). Guarded by `ADMIN_TOKEN`
 * (src/core/http/admin.ts), outside `/api/v1` and its rate limits, as scrapers expect.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { NotFoundEnvelope, UnauthorizedEnvelope } from "./errors.ts"

/**
 * Plain `text/plain`: what Prometheus reads as its text format 0.0.4 (the bare media type is what the
 * document can state and the conformance harness compare).
 */
export const MetricsText = HttpApiSchema.Text({ contentType: "text/plain" })

export class OperationsGroup extends HttpApiGroup.make("operations")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(MetricsText)
      .addError(UnauthorizedEnvelope)
      .addError(NotFoundEnvelope)
      .annotate(OpenApi.Summary, "Prometheus metrics")
      .annotate(
        OpenApi.Description,
        "This process's metrics in the Prometheus text format (names and labels: README, Metrics). " +
          "With ADMIN_TOKEN set: `Authorization: Bearer <ADMIN_TOKEN>` (or HTTP Basic with it as the password), " +
          "401 otherwise. Without it: open in development, 404 NOT_FOUND in production (metrics off)."
      )
  )
  .annotate(OpenApi.Description, "Operator routes: metrics for Prometheus") {}
