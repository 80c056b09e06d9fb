/** `/api/v1/webhooks/*`: the raw body is read by the handler, since signatures cover its exact bytes. */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Effect } from "effect"
import { WingmateApi } from "../../domain/api.ts"
import { ClerkWebhooks } from "./clerk-webhooks.service.ts"

export const WebhooksHttpLive = HttpApiBuilder.group(WingmateApi, "webhooks", (handlers) =>
  Effect.gen(function* () {
    const clerk = yield* ClerkWebhooks
    return handlers.handleRaw("clerk", () =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const body = yield* request.text.pipe(Effect.orDie)
        const receipt = yield* clerk.receive({ body, headers: request.headers })
        return receipt
      })
    )
  })
)
