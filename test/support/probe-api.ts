/**
 * A test-only API mounted beside the real one: a payload endpoint and a failing one, so the
 * plumbing (validation envelope, malformed JSON, body limit, defects) is exercised through the
 * same builder, router and middleware as production routes.
 */
import { HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpLayerRouter } from "@effect/platform"
import { Effect, Layer, Schema } from "effect"
import { JsonBodiesLive } from "../../src/core/http/json-bodies.ts"
import { JsonBodies, makeApi } from "../../src/domain/api.ts"
import { Envelope } from "../../src/domain/envelope.ts"
import { InternalErrorEnvelope, InvalidJsonEnvelope, PayloadTooLargeEnvelope } from "../../src/domain/errors.ts"

const Person = Schema.Struct({
  name: Schema.String.pipe(Schema.minLength(1)),
  age: Schema.Int.pipe(Schema.between(18, 120))
})

class ProbeGroup extends HttpApiGroup.make("probe")
  .add(
    HttpApiEndpoint.post("echo", "/echo")
      .setPayload(Person.annotations({ parseOptions: { errors: "all" } }))
      .addSuccess(Envelope(Person))
  )
  .add(HttpApiEndpoint.get("defect", "/defect").addSuccess(Envelope(Schema.String)))
  .prefix("/probe") {}

export class ProbeApi extends makeApi("probe")
  .add(ProbeGroup)
  .prefix("/api/v1")
  .addError(InvalidJsonEnvelope)
  .addError(PayloadTooLargeEnvelope)
  .addError(InternalErrorEnvelope)
  .middleware(JsonBodies) {}

export const SECRET_DEFECT_TEXT = "connection string postgres://user:hunter2@db"

const ProbeHandlers = HttpApiBuilder.group(ProbeApi, "probe", (handlers) =>
  handlers
    .handle("echo", ({ payload }) => Effect.succeed(payload))
    .handle("defect", () => Effect.die(new Error(SECRET_DEFECT_TEXT)))
)

export const ProbeRoutes = HttpLayerRouter.addHttpApi(ProbeApi).pipe(
  Layer.provide(ProbeHandlers),
  Layer.provide(JsonBodiesLive)
)
