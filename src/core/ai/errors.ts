/** What the AI strategy can fail with. Modules map them to the wire (AI_UNAVAILABLE, QUOTA_EXCEEDED, …). */
import { Schema } from "effect"
import { ProviderErrorKind, ProviderId } from "./provider.ts"

export const AttemptRecord = Schema.Struct({
  provider: ProviderId,
  model: Schema.String,
  outcome: Schema.Literal("timeout", "error", "skipped"),
  kind: Schema.optional(Schema.Union(ProviderErrorKind, Schema.Literal("invalid_output", "circuit_open"))),
  status: Schema.optional(Schema.Number)
})
export type AttemptRecord = typeof AttemptRecord.Type

/** Every provider in the chain failed (or was skipped); the list says how each did. */
export class AiUnavailable extends Schema.TaggedError<AiUnavailable>()("AiUnavailable", {
  attempts: Schema.Array(AttemptRecord)
}) {}

/** A provider refused the request itself (invalid request): the others were not tried. */
export class AiRejected extends Schema.TaggedError<AiRejected>()("AiRejected", {
  provider: ProviderId,
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

/** The answer did not match the schema, even after one corrective retry. */
export class AiInvalidOutput extends Schema.TaggedError<AiInvalidOutput>()("AiInvalidOutput", {
  provider: ProviderId,
  issues: Schema.String
}) {}

/** A stream failed after text had reached the caller: reported, not restarted elsewhere. */
export class AiStreamFailed extends Schema.TaggedError<AiStreamFailed>()("AiStreamFailed", {
  provider: ProviderId,
  kind: Schema.String,
  deltas: Schema.Number
}) {}

/** The user's daily AI spend cap is reached; nothing was sent to any provider. */
export class AiQuotaExceeded extends Schema.TaggedError<AiQuotaExceeded>()("AiQuotaExceeded", {
  retryAfterSeconds: Schema.Number,
  spentMicros: Schema.Number,
  capMicros: Schema.Number
}) {}

export type AiError = AiUnavailable | AiRejected | AiInvalidOutput | AiStreamFailed | AiQuotaExceeded
