/** The caller's own account: read, update the profile, export everything (GDPR Art. 15/20), erase everything. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Authentication, TokenAuthentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import { RateLimitedEnvelope } from "./errors.ts"
import { Text } from "./fields.ts"
import { Match } from "./matches.ts"
import { Opener } from "./openers.ts"
import { Session } from "./sessions.ts"
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

/**
 * A session as exported: its summary, context, transcript and every suggestion with its feedback
 * (not the thumbnails' URLs, which expire within minutes: `GET /sessions/:id` gives fresh ones).
 */
export const ExportedSession = Session.omit("images").annotations({ identifier: "ExportedSession" })
export type ExportedSession = typeof ExportedSession.Type

/** One model call made for the user (the `ai_calls` ledger): what answered and what it cost; never the prompt. */
export const AiUsageEntry = Schema.Struct({
  feature: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  inputTokens: Schema.Int,
  outputTokens: Schema.Int,
  /** Millionths of a US dollar. */
  costMicros: Schema.Int,
  latencyMs: Schema.Int,
  /** `ok`, or how the call failed. */
  outcome: Schema.String,
  createdAt: Schema.DateFromString
}).annotations({
  identifier: "AiUsageEntry",
  description: "One model call made for the account (the ai_calls ledger); never its prompt"
})
export type AiUsageEntry = typeof AiUsageEntry.Type

/** The kinds of the export, each bounded (see `EXPORT_BOUNDS`). */
export const ExportKind = Schema.Literal(
  "matches",
  "openers",
  "sessions",
  "transcriptMessages",
  "suggestions",
  "aiUsage"
)
export type ExportKind = typeof ExportKind.Type

/**
 * How many rows of each kind an export holds at the most, newest first: far above what the daily
 * quotas let one account make in years, and a bound on the answer's size (tens of MB at worst).
 * A kind cut at its bound is named in `truncated`.
 */
export const EXPORT_BOUNDS: Readonly<Record<ExportKind, number>> = {
  matches: 5_000,
  openers: 50_000,
  sessions: 10_000,
  transcriptMessages: 200_000,
  suggestions: 100_000,
  aiUsage: 100_000
}

/** Everything the account holds about its owner, and nobody else's data. */
export const UserExport = Schema.Struct({
  exportedAt: Schema.DateFromString,
  profile: UserProfile,
  matches: Schema.Array(Match),
  /** With their feedback (`feedback`, `dislikeReason`). */
  openers: Schema.Array(Opener),
  sessions: Schema.Array(ExportedSession),
  aiUsage: Schema.Array(AiUsageEntry),
  truncated: Schema.Array(ExportKind).annotations({
    description: "The kinds that reached their bound: the oldest rows of those were left out"
  })
}).annotations({
  identifier: "UserExport",
  description: "Everything the account holds about its owner, and nobody else's data"
})
export type UserExport = typeof UserExport.Type

const EXPORT_DESCRIPTION =
  "The caller's data as JSON (GDPR Art. 15 access, Art. 20 portability): profile, matches, openers " +
  "with feedback, sessions with transcripts and suggestions with feedback, and AI usage (the model " +
  "calls made for the account: feature, provider, model, tokens, cost, latency, time; never prompts). " +
  "Not included: images (only a session's thumbnail is kept, shown by `GET /sessions/:id`) and storage " +
  "keys. Each kind holds at most " +
  Object.entries(EXPORT_BOUNDS)
    .map(([kind, bound]) => `${bound} ${kind}`)
    .join(", ") +
  " (newest first; a cut kind is named in `truncated`). Limited per user (RATE_LIMIT_EXPORT_USER, " +
  "default 5 an hour) on top of the REST limits: 429 RATE_LIMITED with Retry-After."

export class UsersGroup extends HttpApiGroup.make("users")
  .add(
    HttpApiEndpoint.get("me", "/me")
      .annotate(OpenApi.Summary, "Get the caller's profile")
      .addSuccess(Envelope(UserProfile))
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.patch("updateMe", "/me")
      .annotate(OpenApi.Summary, "Update the caller's profile")
      .setPayload(UpdateProfile)
      .addSuccess(Envelope(UserProfile))
      .middleware(Authentication)
  )
  .add(
    HttpApiEndpoint.get("exportMe", "/me/export")
      .annotate(OpenApi.Summary, "Export the caller's data")
      .addSuccess(Envelope(UserExport))
      .addError(RateLimitedEnvelope)
      .middleware(Authentication)
      .annotate(OpenApi.Description, EXPORT_DESCRIPTION)
  )
  .add(
    HttpApiEndpoint.del("eraseMe", "/me")
      .annotate(OpenApi.Summary, "Erase the caller's account")
      .addSuccess(HttpApiSchema.NoContent)
      .middleware(TokenAuthentication)
      .annotate(
        OpenApi.Description,
        "Erases the account and everything it owns (rows, stored images, queued jobs, progress). " +
          "Idempotent: a second call answers 204 too."
      )
  )
  .prefix("/users")
  .annotate(
    OpenApi.Description,
    "The caller's account: profile, data export (GDPR access and portability) and erasure."
  ) {}
