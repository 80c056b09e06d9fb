/** Magic Openers: first messages for a match, streamed as they are written; feedback shapes the next ones. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Authentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import {
  AiInvalidOutputEnvelope,
  AiRequestRejectedEnvelope,
  AiUnavailableEnvelope,
  IdempotencyKeyInFlightEnvelope,
  IdempotencyKeyReusedEnvelope,
  NotFoundEnvelope,
  QuotaExceededEnvelope,
  SafetyBlockedEnvelope,
  ServiceUnavailableEnvelope
} from "./errors.ts"
import { LongText, Text } from "./fields.ts"
import { Page, PageParams, ResourceId } from "./pagination.ts"
import { LanguageTag, Tone } from "./tones.ts"

export const InlineProfile = Schema.Struct({
  name: Schema.optionalWith(Text(100), { exact: true }),
  bio: Schema.optionalWith(LongText(2000), { exact: true }),
  interests: Schema.optionalWith(Schema.Array(Text(60)).pipe(Schema.maxItems(30)), { exact: true })
}).annotations({ identifier: "InlineProfile" })

export const GenerateOpeners = Schema.Struct({
  /** A saved match (its profile, screenshot and previous openers are used)… */
  matchId: Schema.optionalWith(ResourceId, { exact: true }),
  /** …or a profile given inline. One of the two is required. */
  profile: Schema.optionalWith(InlineProfile, { exact: true }),
  /** Default: the user's default tone, else playful. */
  tone: Schema.optionalWith(Tone, { exact: true }),
  /** BCP 47. Default: the user's preferred language, else en. */
  language: Schema.optionalWith(LanguageTag, { exact: true }),
  count: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 5)), { default: () => 3 })
})
  .pipe(
    Schema.filter((input) =>
      input.matchId !== undefined || input.profile !== undefined
        ? undefined
        : { path: ["matchId"], message: "Give a matchId or an inline profile" }
    )
  )
  .annotations({ identifier: "GenerateOpeners", parseOptions: { onExcessProperty: "error", errors: "all" } })
export type GenerateOpeners = typeof GenerateOpeners.Type

export const Feedback = Schema.Literal("liked", "disliked")

export const Opener = Schema.Struct({
  id: Schema.String,
  matchId: Schema.NullOr(Schema.String),
  batchId: Schema.String,
  position: Schema.Int,
  text: Schema.String,
  tone: Tone,
  language: Schema.String,
  promptVersion: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  feedback: Schema.NullOr(Feedback),
  dislikeReason: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromString
}).annotations({ identifier: "Opener" })
export type Opener = typeof Opener.Type

export const Usage = Schema.Struct({ inputTokens: Schema.Int, outputTokens: Schema.Int })

/** How a generation went: who answered (`local: true` for the offline provider) and what it cost. */
export const GenerationMeta = Schema.Struct({
  batchId: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  local: Schema.Boolean,
  usage: Usage,
  costMicros: Schema.Int,
  /** Lines the model wrote that were not kept (unsafe, duplicate, malformed). */
  blocked: Schema.Int
}).annotations({ identifier: "GenerationMeta" })

export const GenerationResult = Schema.Struct({
  openers: Schema.Array(Opener),
  meta: GenerationMeta
}).annotations({ identifier: "GenerationResult" })
export type GenerationResult = typeof GenerationResult.Type

export const BlockedReason = Schema.Literal("unsafe", "duplicate", "too_long")
export type BlockedReason = typeof BlockedReason.Type

/** One event of a streamed generation (SSE, WebSocket and RPC carry the same ones). */
export const OpenerEvent = Schema.Union(
  Schema.TaggedStruct("delta", { index: Schema.Int, text: Schema.String }),
  Schema.TaggedStruct("done", { index: Schema.Int, opener: Opener }),
  Schema.TaggedStruct("blocked", { index: Schema.Int, reason: BlockedReason }),
  Schema.TaggedStruct("final", { meta: GenerationMeta })
).annotations({ identifier: "OpenerEvent" })
export type OpenerEvent = typeof OpenerEvent.Type

/** The Server-Sent Events sent with `Accept: text/event-stream`, in order. */
const SSE_DESCRIPTION =
  "Server-Sent Events, in order:\n" +
  "- `event: delta`, data `{index, text}`: a piece of opener `index` as it is written;\n" +
  "- `event: done`, data `{index, opener}`: opener `index` is complete, checked and saved (its text is the authoritative one);\n" +
  "- `event: blocked`, data `{index, reason}`: a line the model wrote was not kept (`unsafe`, `duplicate`, `too_long`);\n" +
  "- `event: final`, data `GenerationMeta`: the generation ended, with usage and cost;\n" +
  "- `event: error`, data `{code, message}`: the generation failed (openers already done stay saved)."

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/** The 200 response also comes as `text/event-stream` (HttpApi documents one schema per status). */
const withEventStream = (operation: Record<string, unknown>): Record<string, unknown> => {
  const responses = isRecord(operation["responses"]) ? operation["responses"] : {}
  const ok = isRecord(responses["200"]) ? responses["200"] : {}
  const content = isRecord(ok["content"]) ? ok["content"] : {}
  return {
    ...operation,
    responses: {
      ...responses,
      "200": {
        ...ok,
        content: { ...content, "text/event-stream": { schema: { type: "string", description: SSE_DESCRIPTION } } }
      }
    }
  }
}

export const ListOpenersParams = Schema.Struct({
  ...PageParams.fields,
  matchId: Schema.optional(ResourceId)
})

export const DislikeOpener = Schema.Struct({
  reason: Schema.optionalWith(LongText(300, { allowEmpty: true }), { exact: true })
}).annotations({ identifier: "DislikeOpener", parseOptions: { onExcessProperty: "error" } })

/** The reason is optional, and so is the body itself (absent, empty or `null`). */
export const DislikeBody = Schema.NullOr(DislikeOpener)

/**
 * The generator writes `requestBody.required: true` for every payload; a dislike is accepted
 * without one, and a generated client must not be made to send it.
 */
export const withOptionalBody = (operation: Record<string, unknown>): Record<string, unknown> =>
  isRecord(operation["requestBody"])
    ? { ...operation, requestBody: { ...operation["requestBody"], required: false } }
    : operation

const OpenerPath = Schema.Struct({ openerId: ResourceId })

export class OpenersGroup extends HttpApiGroup.make("openers")
  .add(
    HttpApiEndpoint.post("generate", "/generate")
      .annotate(OpenApi.Summary, "Generate openers for a match")
      .setPayload(GenerateOpeners)
      .addSuccess(Envelope(GenerationResult))
      .addError(NotFoundEnvelope)
      .addError(SafetyBlockedEnvelope)
      .addError(QuotaExceededEnvelope)
      .addError(AiUnavailableEnvelope)
      .addError(AiRequestRejectedEnvelope)
      .addError(AiInvalidOutputEnvelope)
      .addError(IdempotencyKeyReusedEnvelope)
      .addError(IdempotencyKeyInFlightEnvelope)
      .addError(ServiceUnavailableEnvelope)
      .annotate(
        OpenApi.Description,
        "Writes `count` openers. With `Accept: text/event-stream` they stream as Server-Sent Events " +
          "(see the text/event-stream response); otherwise the saved openers come in the envelope. " +
          "A client that disconnects stops the generation; only complete, checked openers are saved."
      )
      .annotate(OpenApi.Transform, withEventStream)
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .annotate(OpenApi.Summary, "List openers")
      .setUrlParams(ListOpenersParams)
      .addSuccess(Envelope(Page(Opener)))
  )
  .add(
    HttpApiEndpoint.post("like", "/:openerId/like")
      .annotate(OpenApi.Summary, "Like an opener")
      .setPath(OpenerPath)
      .addSuccess(Envelope(Opener))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.del("unlike", "/:openerId/like")
      .annotate(OpenApi.Summary, "Clear an opener's like")
      .setPath(OpenerPath)
      .addSuccess(Envelope(Opener))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.post("dislike", "/:openerId/dislike")
      .annotate(OpenApi.Summary, "Dislike an opener")
      .setPath(OpenerPath)
      .setPayload(DislikeBody)
      .addSuccess(Envelope(Opener))
      .addError(NotFoundEnvelope)
      .annotate(OpenApi.Transform, withOptionalBody)
  )
  .middleware(Authentication)
  .prefix("/magic-openers")
  .annotate(
    OpenApi.Description,
    "Magic openers: first messages written for a match, streamed or answered whole, with feedback."
  ) {}
