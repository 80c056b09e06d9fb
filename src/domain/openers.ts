/** Magic Openers: first messages for a match, streamed as they are written; feedback shapes the next ones. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
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
import { type SseEventDoc, withEventStream } from "./sse.ts"
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

const EventIndex = Schema.Int.annotations({ description: "The opener's index in the generation (0 ≤ index < count)" })
const FailureCode = Schema.String.annotations({ description: "An error code of the catalog, e.g. AI_UNAVAILABLE" })

/** The Server-Sent Events sent with `Accept: text/event-stream`, in order. */
export const OPENER_STREAM_EVENTS: ReadonlyArray<SseEventDoc> = [
  {
    event: "delta",
    description: "A piece of opener `index` as it is written",
    data: Schema.Struct({ index: EventIndex, text: Schema.String })
  },
  {
    event: "done",
    description: "Opener `index` is complete, checked and saved (its text is the authoritative one)",
    data: Schema.Struct({ index: EventIndex, opener: Opener })
  },
  {
    event: "blocked",
    description: "The line written as `index` was not kept: drop the text its deltas showed",
    data: Schema.Struct({ index: EventIndex, reason: BlockedReason })
  },
  {
    event: "final",
    description: "Terminal: the generation ended; its meta (usage, cost) and the openers saved",
    data: Schema.Struct({ ...GenerationMeta.fields, openers: Schema.Array(Opener) })
  },
  {
    event: "failed",
    description:
      "Terminal: the generation failed; the openers saved before stay saved (an account erased meanwhile: " +
      "UNAUTHORIZED with `details.reason` `account-erased`, and they went with it)",
    data: Schema.Struct({
      code: FailureCode,
      message: Schema.String,
      details: Schema.optional(Schema.Unknown),
      openers: Schema.Array(Opener)
    })
  }
]

const OPENER_STREAM =
  "With `Accept: text/event-stream`: `retry:` first, then the events in order, each with the id " +
  "`<batchId>:<n>`; the response ends after the terminal event (`final` or `failed`)."

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

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
          "A client that disconnects stops the generation; only complete, checked openers are saved. " +
          "A reconnect carrying `Last-Event-ID` never generates again: 204."
      )
      .annotate(
        OpenApi.Transform,
        withEventStream({
          description: OPENER_STREAM,
          events: OPENER_STREAM_EVENTS,
          lastEventId:
            "Sent by an EventSource reconnecting: the request never generates (nor counts) again and answers 204",
          ended:
            "A reconnect (`Last-Event-ID` sent with `Accept: text/event-stream`): the generation ended with its " +
            "terminal event or stopped with the connection; stop reconnecting. Its saved openers are listed by " +
            "GET /magic-openers (`batchId`). The same answer whatever the id names (another user's batch, nothing)."
        })
      )
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
  .add(
    HttpApiEndpoint.del("undislike", "/:openerId/dislike")
      .annotate(OpenApi.Summary, "Clear an opener's dislike")
      .setPath(OpenerPath)
      .addSuccess(Envelope(Opener))
      .addError(NotFoundEnvelope)
      .annotate(
        OpenApi.Description,
        "Clears the caller's dislike of the opener and its reason (a like stays as it is); idempotent. " +
          "Another user's opener is 404 NOT_FOUND, as a missing one."
      )
  )
  .middleware(Authentication)
  .prefix("/magic-openers")
  .annotate(
    OpenApi.Description,
    "Magic openers: first messages written for a match, streamed or answered whole, with feedback."
  ) {}
