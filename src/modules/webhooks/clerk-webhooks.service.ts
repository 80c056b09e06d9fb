/**
 * Clerk webhooks: svix signature checked on the raw body, each delivery processed once (its
 * `svix-id` is recorded with the effect), user events mirrored into our users.
 */
import { verifyWebhook } from "@clerk/backend/webhooks"
import { Effect, Option, Redacted, Schema } from "effect"
import { toTheEnd } from "../../core/to-the-end.ts"
import { AppConfig } from "../../core/config.ts"
import { Db } from "../../core/db/db.ts"
import { InvalidSignature, ServiceUnavailable } from "../../domain/errors.ts"
import { PlainString, storableText } from "../../domain/fields.ts"
import type { WebhookReceipt } from "../../domain/webhooks.ts"
import { UsersService } from "../users/users.service.ts"

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
    const db = yield* Db
    const users = yield* UsersService

    const verify = (secret: Redacted.Redacted, delivery: WebhookDelivery) =>
      Effect.tryPromise({
        try: () =>
          verifyWebhook(
            new Request("http://localhost/api/v1/webhooks/clerk", {
              method: "POST",
              headers: {
                "content-type": "application/json",
                "svix-id": delivery.headers["svix-id"] ?? "",
                "svix-timestamp": delivery.headers["svix-timestamp"] ?? "",
                "svix-signature": delivery.headers["svix-signature"] ?? ""
              },
              body: delivery.body
            }),
            { signingSecret: Redacted.value(secret) }
          ),
        catch: () => invalid("The webhook signature is missing, invalid or stale")
      }).pipe(
        // Signed, but not an event this server reads (`{}`, `[]`, a shape Clerk changed): no retry
        // would read it either, so it is acknowledged and ignored, as an unknown event type is.
        Effect.flatMap((event) => Effect.option(Schema.decodeUnknown(Event)(event)))
      )

    const apply = (event: typeof Event.Type) =>
      Effect.gen(function* () {
        switch (event.type) {
          case "user.created":
          case "user.updated": {
            const user = yield* Schema.decodeUnknown(ClerkUser)(event.data)
            const primary = user.email_addresses.find((address) => address.id === user.primary_email_address_id)
            yield* users.syncFromClerk(
              user.id,
              {
                email: primary?.email_address.toLowerCase() ?? null,
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
        const deliveryId = delivery.headers["svix-id"] ?? ""
        // Claimed, then carried out to the end even when the sender hangs up meanwhile (Svix
        // gives up on a slow answer): an interrupted erasure would keep the claim with its work
        // half done, and every redelivery would answer "already processed".
        return yield* toTheEnd(
          Effect.gen(function* () {
            const claimed = yield* db.query("webhookDeliveries.claim", (c) =>
              c.webhookDelivery.createMany({
                // The type as text PostgreSQL stores (a signed type could hold a NUL): for operators only.
                data: [{ id: deliveryId, source: "clerk", type: storableText(event.type, 200) }],
                skipDuplicates: true
              })
            )
            if (claimed.count === 0) return { processed: false, handled: false }
            const handled = yield* apply(event).pipe(
              Effect.catchTag("ParseError", () =>
                Effect.logWarning("Clerk webhook with an unexpected shape; ignored").pipe(
                  Effect.annotateLogs("type", storableText(event.type, 100)),
                  Effect.as(false)
                )
              ),
              // Undo the claim, whatever stopped the work, so that Clerk's retry of this delivery is processed.
              Effect.onError(() =>
                db
                  .query("webhookDeliveries.release", (c) =>
                    c.webhookDelivery.deleteMany({ where: { id: deliveryId } })
                  )
                  .pipe(Effect.ignoreLogged)
              )
            )
            return { processed: true, handled }
          })
        )
      }).pipe(Effect.catchTags({ DbError: Effect.die, ErasureFailed: Effect.die }))

    return { receive } as const
  })
}) {}
