/**
 * Clerk webhooks: svix signature checked on the raw body, each delivery processed once (its
 * `svix-id` claimed before the work and marked processed after it: webhook-deliveries.ts), user
 * events mirrored into our users.
 */
import { Clock, Duration, Effect, Option, Redacted, Schema } from "effect"
import { Webhook } from "standardwebhooks"
import { toTheEnd } from "../../core/to-the-end.ts"
import { AppConfig } from "../../core/config.ts"
import { InvalidSignature, ServiceUnavailable } from "../../domain/errors.ts"
import { PlainString, storableText } from "../../domain/fields.ts"
import type { WebhookReceipt } from "../../domain/webhooks.ts"
import { UsersService } from "../users/users.service.ts"
import { WebhookDeliveries } from "./webhook-deliveries.ts"

/**
 * A Clerk id as a session token's `sub` may carry it (1 to 255 characters), without what
 * PostgreSQL cannot store or no Clerk id holds (NUL, control characters, lone surrogates): a
 * signed event naming anything else has an unexpected shape, and is ignored.
 */
const ClerkId = PlainString().pipe(Schema.minLength(1), Schema.maxLength(255))

/** Clerk's times are milliseconds since the epoch; beyond a date's range is not one of them. */
const EpochMillis = Schema.Number.pipe(Schema.between(0, 8.64e15))

const ClerkUser = Schema.Struct({
  id: ClerkId,
  email_addresses: Schema.optionalWith(
    Schema.Array(Schema.Struct({ id: Schema.String, email_address: Schema.String })),
    { default: () => [] }
  ),
  primary_email_address_id: Schema.optional(Schema.NullOr(Schema.String)),
  first_name: Schema.optional(Schema.NullOr(Schema.String)),
  last_name: Schema.optional(Schema.NullOr(Schema.String)),
  image_url: Schema.optional(Schema.NullOr(Schema.String)),
  updated_at: Schema.optional(EpochMillis)
})

const DeletedUser = Schema.Struct({ id: ClerkId })

const Event = Schema.Struct({
  type: Schema.String,
  data: Schema.Unknown,
  timestamp: Schema.optional(Schema.Number)
})

/** The signed body as an event, if it is one (JSON of an object with a string `type`). */
const decodeEvent = Schema.decodeUnknownOption(Schema.parseJson(Event))

/**
 * How long a redelivery waits for a concurrent processing of the same delivery to end (polling
 * every `BUSY_POLL`) before it answers 503, for Svix to retry later: well within Svix's 15 s.
 */
const BUSY_WAIT = Duration.seconds(5)
const BUSY_POLL = Duration.millis(100)

/** The event's `timestamp` when it is a time (a fallback for a user without `updated_at`). */
const eventTime = (event: typeof Event.Type): number | undefined =>
  Schema.is(EpochMillis)(event.timestamp) ? event.timestamp : undefined

export interface WebhookDelivery {
  readonly body: string
  readonly headers: Readonly<Record<string, string | undefined>>
}

const invalid = (message: string) => new InvalidSignature({ message })

export class ClerkWebhooks extends Effect.Service<ClerkWebhooks>()("ClerkWebhooks", {
  effect: Effect.gen(function* () {
    const config = yield* AppConfig
    const deliveries = yield* WebhookDeliveries
    const users = yield* UsersService

    /**
     * The signature over `${svix-id}.${svix-timestamp}.${body}` and the timestamp's freshness (5
     * minutes), checked by `standardwebhooks`, the verifier `@clerk/backend`'s `verifyWebhook`
     * wraps. Not through that wrapper: it reads `.type` off the parsed body, so a correctly signed
     * `null` (or empty, or non-JSON) body came out as a failed verification, a 400 Svix retries for
     * a day. The body is read here, after the signature holds.
     */
    const verify = (secret: Redacted.Redacted, delivery: WebhookDelivery) =>
      Effect.try({
        try: () => {
          new Webhook(Redacted.value(secret)).verify(
            delivery.body,
            {
              "webhook-id": delivery.headers["svix-id"]?.trim() ?? "",
              "webhook-timestamp": delivery.headers["svix-timestamp"]?.trim() ?? "",
              "webhook-signature": delivery.headers["svix-signature"]?.trim() ?? ""
            },
            { jsonParse: false }
          )
        },
        catch: () => invalid("The webhook signature is missing, invalid or stale")
      }).pipe(
        // Signed, but not an event this server reads (`null`, `{}`, `[]`, not JSON, a shape Clerk
        // changed): no retry would read it either, so it is acknowledged and ignored, as an unknown
        // event type is.
        Effect.map(() => decodeEvent(delivery.body))
      )

    const apply = (event: typeof Event.Type) =>
      Effect.gen(function* () {
        switch (event.type) {
          case "user.created":
          case "user.updated": {
            const user = yield* Schema.decodeUnknown(ClerkUser)(event.data)
            const primary = user.email_addresses.find((address) => address.id === user.primary_email_address_id)
            // The email as Clerk spells it: users.repo.ts stores every email in lower case, a token's too.
            yield* users.syncFromClerk(
              user.id,
              {
                email: primary?.email_address ?? null,
                firstName: user.first_name ?? null,
                lastName: user.last_name ?? null,
                imageUrl: user.image_url ?? null
              },
              new Date(user.updated_at ?? eventTime(event) ?? Date.now())
            )
            return true
          }
          case "user.deleted": {
            const user = yield* Schema.decodeUnknown(DeletedUser)(event.data)
            yield* users.erase(user.id)
            return true
          }
          default:
            return false
        }
      })

    const receive = (delivery: WebhookDelivery): Effect.Effect<WebhookReceipt, InvalidSignature | ServiceUnavailable> =>
      Effect.gen(function* () {
        const secret = yield* Option.match(config.clerkWebhookSigningSecret, {
          onNone: () =>
            Effect.fail(new ServiceUnavailable({ message: "Clerk webhooks are not configured on this server" })),
          onSome: Effect.succeed
        })
        const verified = yield* verify(secret, delivery)
        if (Option.isNone(verified)) {
          yield* Effect.logWarning("Clerk webhook signed but not an event; ignored")
          return { processed: true, handled: false }
        }
        const event = verified.value
        const deliveryId = delivery.headers["svix-id"]?.trim() ?? ""
        // Claimed, then carried out to the end even when the sender hangs up meanwhile (Svix
        // gives up on a slow answer): a claim is not left behind with its work half done.
        const attempt = toTheEnd(
          Effect.gen(function* () {
            // The type as text PostgreSQL stores (a signed type could hold a NUL): for operators only.
            const claim = yield* deliveries.claim(deliveryId, "clerk", storableText(event.type, 200))
            if (claim === "processed" || claim === "busy") return claim
            if (claim === "taken-over") {
              yield* Effect.logWarning("Clerk webhook delivery processed again: its earlier processing did not finish")
            }
            const handled = yield* deliveries.processClaimed(
              deliveryId,
              apply(event).pipe(
                Effect.catchTag("ParseError", () =>
                  Effect.logWarning("Clerk webhook with an unexpected shape; ignored").pipe(
                    Effect.annotateLogs("type", storableText(event.type, 100)),
                    Effect.as(false)
                  )
                )
              )
            )
            return { processed: true, handled }
          })
        )
        // A redelivery while the same delivery is being processed (Svix retries a slow answer)
        // waits for that processing: "already processed" once it succeeded, processed here if it
        // failed; still running after BUSY_WAIT, a 503 (never a 200 for work not done yet).
        const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(BUSY_WAIT)
        for (;;) {
          const outcome = yield* attempt
          if (outcome === "processed") return { processed: false, handled: false }
          if (outcome !== "busy") return outcome
          if ((yield* Clock.currentTimeMillis) >= deadline) {
            return yield* new ServiceUnavailable({
              message: "This delivery is being processed; retry it later"
            })
          }
          yield* Effect.sleep(BUSY_POLL)
        }
      }).pipe(Effect.catchTags({ DbError: Effect.die, ErasureFailed: Effect.die }))

    return { receive } as const
  }),
  dependencies: [WebhookDeliveries.Default]
}) {}
