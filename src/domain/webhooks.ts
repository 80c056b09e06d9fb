/** Inbound webhooks. Clerk's are signed (svix) and delivered at least once. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Envelope } from "./envelope.ts"
import { InvalidSignatureEnvelope, ServiceUnavailableEnvelope } from "./errors.ts"
import { PlainString } from "./fields.ts"

/** What Clerk sends; the handler verifies the raw body before reading any of it. */
export const ClerkWebhookEvent = Schema.Struct({
  type: PlainString().pipe(Schema.maxLength(200)),
  data: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}).annotations({ identifier: "ClerkWebhookEvent" })

export const WebhookReceipt = Schema.Struct({
  /** false when this `svix-id` was already processed (a redelivery): nothing was done again. */
  processed: Schema.Boolean,
  /** false for event types this backend does not use, and for a signed body that is not an event it reads. */
  handled: Schema.Boolean
}).annotations({ identifier: "WebhookReceipt" })
export type WebhookReceipt = typeof WebhookReceipt.Type

export class WebhooksGroup extends HttpApiGroup.make("webhooks")
  .add(
    HttpApiEndpoint.post("clerk", "/clerk")
      .annotate(OpenApi.Summary, "Receive a Clerk webhook")
      .setPayload(ClerkWebhookEvent)
      .addSuccess(Envelope(WebhookReceipt))
      .addError(InvalidSignatureEnvelope)
      .addError(ServiceUnavailableEnvelope)
      .annotate(
        OpenApi.Description,
        "Clerk user events (user.created, user.updated, user.deleted), verified with the svix-id, " +
          "svix-timestamp and svix-signature headers on the raw body. Redeliveries have one effect; one that " +
          "arrives while the same delivery is still being processed answers 503, to be retried."
      )
  )
  .prefix("/webhooks")
  .annotate(
    OpenApi.Description,
    "Events from Clerk (account lifecycle), signed with Svix and delivered at least once."
  ) {}
