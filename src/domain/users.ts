/** The caller's own account: read, update the profile, erase everything. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication, TokenAuthentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
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

const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(100))

/** Only these fields can be changed by the user; anything else is rejected, never written. `null` clears. */
export const UpdateProfile = Schema.Struct({
  firstName: Schema.optional(Schema.NullOr(Name)),
  lastName: Schema.optional(Schema.NullOr(Name)),
  preferredLanguage: Schema.optional(Schema.NullOr(LanguageTag)),
  defaultTone: Schema.optional(Schema.NullOr(Tone))
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
