/** Liveness and readiness probes, outside `/api/v1` as load balancers expect. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Envelope } from "./envelope.ts"
import { ServiceUnavailableEnvelope } from "./errors.ts"

export const Liveness = Schema.Struct({
  status: Schema.Literal("ok"),
  uptimeSeconds: Schema.Number
})

export const CheckResult = Schema.Literal("ok", "failed", "not_configured")

export const Readiness = Schema.Struct({
  status: Schema.Literal("ready"),
  checks: Schema.Struct({ database: CheckResult, redis: CheckResult })
})
export type Readiness = typeof Readiness.Type

export class HealthGroup extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live")
      .annotate(OpenApi.Summary, "Liveness probe")
      .addSuccess(Envelope(Liveness))
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready")
      .annotate(OpenApi.Summary, "Readiness probe")
      .addSuccess(Envelope(Readiness))
      .addError(ServiceUnavailableEnvelope)
      .annotate(OpenApi.Description, "200 when the database (and Redis, when configured) answer; 503 otherwise.")
  )
  .annotate(OpenApi.Description, "Probes for load balancers and orchestrators") {}
