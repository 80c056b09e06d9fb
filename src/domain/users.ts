/** The caller's own account: read, update the profile, erase everything. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication, TokenAuthentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import { Text } from "./fields.ts"
import { LanguageTag, Tone } from "./tones.ts"

export const UserProfile = Schema.Struct({
  id: Schema.String,
  email: Schema.NullOr(Schema.String),
  firstName: Schema.NullOr(Schema.String),
  lastName: Schema.NullOr(Schema.String),
  imageUrl: Schema.NullOr(Schema.String),
  preferredLanguage: Schema.NullOr(LanguageTag),
  defaultTone: Schema.NullOr(Tone),
  createdAt: Schema.DateFromString,
  updatedAt: Schema.DateFromString
}).annotations({ identifier: "User" })
export type UserProfile = typeof UserProfile.Type

const Name = Text(100)

/** A field that may be cleared with `null`, reported as one issue when wrong. */
const nullable = <A, I>(schema: Schema.Schema<A, I>, expected: string) =>
  Schema.optionalWith(
    Schema.NullOr(schema).annotations({
      message: () => ({ message: `Expected ${expected}, or null to clear it`, override: true })
    }),
    {
      exact: true
    }
  )

/** Only these fields can be changed by the user; anything else is rejected, never written. `null` clears. */
export const UpdateProfile = Schema.Struct({
  firstName: nullable(Name, "a name of 1 to 100 characters"),
  lastName: nullable(Name, "a name of 1 to 100 characters"),
  preferredLanguage: nullable(LanguageTag, "a BCP 47 language tag such as en or fr-CA"),
  defaultTone: nullable(Tone, "one of playful, flirty, witty, sincere, bold")
}).annotations({
  identifier: "UpdateProfile",
  parseOptions: { onExcessProperty: "error", errors: "all" }
})
export type UpdateProfile = typeof UpdateProfile.Type

export class UsersGroup extends HttpApiGroup.make("users")
  .add(HttpApiEndpoint.get("me", "/me").addSuccess(Envelope(UserProfile)).middleware(Authentication))
  .add(
    HttpApiEndpoint.patch("updateMe", "/me")
      .setPayload(UpdateProfile)
      .addSuccess(Envelope(UserProfile))
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.del("eraseMe", "/me")
      .addSuccess(HttpApiSchema.NoContent)
      .middleware(TokenAuthentication)
      .annotate(
        OpenApi.Description,
        "Erases the account and everything it owns (rows, stored images, queued jobs, progress). " +
          "Idempotent: a second call answers 204 too."
      )
  )
  .prefix("/users") {}
