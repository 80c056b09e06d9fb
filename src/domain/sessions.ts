/**
 * Sessions: chat screenshots read into a transcript (OCR), with suggested replies streamed back.
 * `POST /sessions` answers 202 at once; a worker runs the pipeline and publishes its progress,
 * which `GET /sessions/:id/events` streams as Server-Sent Events (resumable with `Last-Event-ID`).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Authentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import {
  AiEmptyResultEnvelope,
  AiInvalidOutputEnvelope,
  AiRequestRejectedEnvelope,
  AiUnavailableEnvelope,
  ConflictEnvelope,
  IdempotencyKeyInFlightEnvelope,
  IdempotencyKeyReusedEnvelope,
  ImageTooLargeEnvelope,
  ImageUnreadableEnvelope,
  NotFoundEnvelope,
  QuotaExceededEnvelope,
  SafetyBlockedEnvelope,
  ServiceUnavailableEnvelope,
  UploadAlreadyUsedEnvelope,
  UploadContentMismatchEnvelope,
  UploadExpiredEnvelope,
  UploadNotReceivedEnvelope,
  UploadPurposeMismatchEnvelope,
  UploadSizeMismatchEnvelope,
  UploadTypeMismatchEnvelope
} from "./errors.ts"
import { LongText } from "./fields.ts"
import { BlockedReason, DislikeBody, Feedback, withOptionalBody } from "./openers.ts"
import { Page, PageParams, ResourceId } from "./pagination.ts"
import { type SseEventDoc, withEventStream } from "./sse.ts"
import { LanguageTag, Tone } from "./tones.ts"
import { MAX_MESSAGE_CHARS, MAX_SCREENSHOT_MESSAGES } from "./transcript-limits.ts"

export const SessionStatus = Schema.Literal("queued", "processing", "completed", "failed", "cancelled")
export type SessionStatus = typeof SessionStatus.Type

export const SessionPhase = Schema.Literal("normalise", "ocr", "transcript", "suggestions")
export type SessionPhase = typeof SessionPhase.Type

export const CreateSession = Schema.Struct({
  /** The chat screenshots, in order (uploads with purpose `session`). */
  uploadIds: Schema.Array(ResourceId).pipe(Schema.minItems(1), Schema.maxItems(10)),
  matchId: Schema.optionalWith(ResourceId, { exact: true }),
  /** Default: the user's default tone, else playful. */
  tone: Schema.optionalWith(Tone, { exact: true }),
  /** BCP 47. Default: the user's preferred language, else en. */
  language: Schema.optionalWith(LanguageTag, { exact: true }),
  /** What the user wants the suggestions to consider. */
  context: Schema.optionalWith(LongText(500), { exact: true })
})
  .pipe(
    Schema.filter((input) =>
      new Set(input.uploadIds).size === input.uploadIds.length
        ? undefined
        : { path: ["uploadIds"], message: "Each upload may appear once" }
    )
  )
  .annotations({ identifier: "CreateSession", parseOptions: { onExcessProperty: "error", errors: "all" } })
export type CreateSession = typeof CreateSession.Type

export const SessionSender = Schema.Literal("me", "them", "system")

export const SessionMessage = Schema.Struct({
  position: Schema.Int.annotations({
    description:
      "The message's place in the transcript, from 0 in reading order: what `PATCH /sessions/{sessionId}/transcript` names a message by"
  }),
  sender: SessionSender,
  text: Schema.String,
  time: Schema.NullOr(Schema.String),
  confidence: Schema.Number
}).annotations({
  identifier: "SessionMessage",
  description: "One message of the transcript; `position` addresses it in a transcript fix"
})
export type SessionMessage = typeof SessionMessage.Type

/** A message of the transcript while the screenshot is being read: provisional, without a confidence yet. */
export const SessionLine = Schema.Struct({
  position: SessionMessage.fields.position,
  sender: SessionSender,
  text: Schema.String,
  time: Schema.NullOr(Schema.String)
}).annotations({
  // No identifier: only the event stream's document uses it, inline (a named schema would be a dangling $ref).
  description: "A message as the screenshot is being read (provisional): the `transcript` event replaces every line"
})
export type SessionLine = typeof SessionLine.Type

export const SessionSuggestion = Schema.Struct({
  id: Schema.String,
  batch: Schema.Int,
  position: Schema.Int,
  text: Schema.String,
  tone: Tone,
  feedback: Schema.NullOr(Feedback),
  /** The reason given with a dislike, if any. */
  dislikeReason: Schema.NullOr(Schema.String)
}).annotations({ identifier: "SessionSuggestion" })
export type SessionSuggestion = typeof SessionSuggestion.Type

/** A session as listed. */
export const SessionSummary = Schema.Struct({
  id: Schema.String,
  matchId: Schema.NullOr(Schema.String),
  status: SessionStatus,
  phase: Schema.NullOr(SessionPhase),
  errorCode: Schema.NullOr(Schema.String),
  tone: Tone,
  language: Schema.String,
  imageCount: Schema.Int,
  createdAt: Schema.DateFromString,
  completedAt: Schema.NullOr(Schema.DateFromString)
}).annotations({ identifier: "SessionSummary" })
export type SessionSummary = typeof SessionSummary.Type

/** A short-lived signed GET of a stored object, for its owner only. */
export const SignedImageUrl = Schema.Struct({
  url: Schema.String.annotations({
    description: "GET it as it is, without the Authorization header; the answer is not to be cached (no-store)"
  }),
  expiresAt: Schema.DateFromString.annotations({
    description: "After this the URL is refused (S3: 403; local storage: 403 URL_EXPIRED): read the session again"
  })
}).annotations({ identifier: "SignedImageUrl", description: "A short-lived signed GET, for the owner only" })
export type SignedImageUrl = typeof SignedImageUrl.Type

/**
 * One screenshot of a session. Only its thumbnail is kept once the chat was read (the full-size
 * image is deleted, after SESSION_SCREENSHOT_RETENTION_SECONDS if set); the thumbnail goes with the session.
 */
export const SessionImage = Schema.Struct({
  position: Schema.Int,
  thumbnail: Schema.NullOr(SignedImageUrl).annotations({
    description:
      "The screenshot's thumbnail (at most IMAGE_THUMBNAIL_EDGE px, default 320) as a signed GET that expires " +
      "after SESSION_THUMBNAIL_URL_TTL_SECONDS (default 600); null until the screenshot is stored (while the chat is being read)"
  })
}).annotations({
  identifier: "SessionImage",
  description:
    "One screenshot of the session. Once the chat was read only its thumbnail is kept (the full-size " +
    "images are deleted, after SESSION_SCREENSHOT_RETENTION_SECONDS when set); it goes with the session."
})
export type SessionImage = typeof SessionImage.Type

/** A session with its screenshots' thumbnails, its transcript and suggestions. */
/** How long each phase took, in milliseconds, for the phases that ran (the last attempt's, after a retry). */
export const SessionTimings = Schema.Struct({
  normalise: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
  ocr: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
  transcript: Schema.optionalWith(Schema.NonNegativeInt, { exact: true }),
  suggestions: Schema.optionalWith(Schema.NonNegativeInt, { exact: true })
}).annotations({
  identifier: "SessionTimings",
  description: "Milliseconds per pipeline phase, for the phases that ran"
})
export type SessionTimings = typeof SessionTimings.Type

export const Session = Schema.Struct({
  ...SessionSummary.fields,
  costMicros: Schema.NonNegativeInt.annotations({
    description:
      "What the AI calls made for this session cost, in millionths of a US dollar: screenshot reading, suggestions, " +
      "regenerations, and attempts that failed but were billed"
  }),
  timings: SessionTimings,
  context: Schema.NullOr(Schema.String),
  images: Schema.Array(SessionImage).annotations({
    description: "The screenshots in order, each with a short-lived thumbnail URL"
  }),
  transcript: Schema.Array(SessionMessage),
  suggestions: Schema.Array(SessionSuggestion)
}).annotations({ identifier: "Session" })
export type Session = typeof Session.Type

/**
 * What the progress feed carries (also the `data` of each SSE event, `event:` being the tag in
 * lower case): state changes, the transcript once persisted, suggestion deltas and the
 * suggestions as saved, then one terminal event.
 */
export const SessionEvent = Schema.Union(
  Schema.TaggedStruct("Status", { status: SessionStatus, phase: Schema.NullOr(SessionPhase) }),
  /** Lines of the first screenshot as the vision model writes them, before the transcript is complete. */
  Schema.TaggedStruct("Lines", { messages: Schema.Array(SessionLine) }),
  Schema.TaggedStruct("Transcript", { messages: Schema.Array(SessionMessage) }),
  Schema.TaggedStruct("Delta", { index: Schema.Int, text: Schema.String }),
  Schema.TaggedStruct("Suggestion", { index: Schema.Int, suggestion: SessionSuggestion }),
  Schema.TaggedStruct("Blocked", { index: Schema.Int, reason: BlockedReason }),
  /** The final summary: the session's suggestions as saved, and what the AI calls cost (micro-USD). */
  Schema.TaggedStruct("Completed", {
    suggestions: Schema.Array(SessionSuggestion),
    costMicros: Schema.NonNegativeInt,
    timings: SessionTimings
  }),
  Schema.TaggedStruct("Failed", { code: Schema.String, message: Schema.String }),
  Schema.TaggedStruct("Cancelled", {})
)
export type SessionEvent = typeof SessionEvent.Type

/** The state kept with the feed: what a late listener gets as its snapshot. */
export const SessionProgressState = Schema.Struct({
  status: SessionStatus,
  phase: Schema.NullOr(SessionPhase),
  errorCode: Schema.NullOr(Schema.String)
})
export type SessionProgressState = typeof SessionProgressState.Type

/**
 * One item of a followed session (SSE, WebSocket, RPC): the state so far (first, when resuming
 * after the listener's last seq is not possible) or an event. `seq` orders them; resume after it.
 */
export const SessionStreamItem = Schema.Union(
  Schema.TaggedStruct("Snapshot", { seq: Schema.Int, state: SessionProgressState }),
  Schema.TaggedStruct("Event", { seq: Schema.Int, event: SessionEvent })
).annotations({ identifier: "SessionStreamItem" })
export type SessionStreamItem = typeof SessionStreamItem.Type

const SuggestionIndex = Schema.Int.annotations({ description: "The suggestion's index in its batch" })
const FailureCode = Schema.String.annotations({ description: "An error code of the catalog, e.g. AI_UNAVAILABLE" })
const DeltaDoc: SseEventDoc = {
  event: "delta",
  description: "A piece of suggestion `index` as it is written",
  data: Schema.Struct({ index: SuggestionIndex, text: Schema.String })
}
const SuggestionDoc: SseEventDoc = {
  event: "suggestion",
  description: "Suggestion `index`, complete, checked and saved (its text is the authoritative one)",
  data: Schema.Struct({ index: SuggestionIndex, suggestion: SessionSuggestion })
}
const BlockedDoc: SseEventDoc = {
  event: "blocked",
  description:
    "The line streamed as `index` was dropped (unsafe, a repeat, too long): drop the text its deltas " +
    "showed; the next line streams under the same index",
  data: Schema.Struct({ index: SuggestionIndex, reason: BlockedReason })
}

/** The follow stream's events (`GET /sessions/:id/events`); the WebSocket's `session.event` carries the same. */
export const SESSION_STREAM_EVENTS: ReadonlyArray<SseEventDoc> = [
  {
    event: "snapshot",
    description: "The state so far (first, when resuming after `Last-Event-ID` is not possible)",
    data: SessionProgressState
  },
  {
    event: "status",
    description: "The session's status and phase changed",
    data: Schema.Struct({ status: SessionStatus, phase: Schema.NullOr(SessionPhase) })
  },
  {
    event: "lines",
    description:
      "Messages of the first screenshot as the vision model writes them, in order (provisional, no confidence " +
      "yet): show each at its `position` as it comes; the `transcript` event replaces them all. Not sent when " +
      "the chat is read by local OCR or was read before (the same screenshot)",
    data: Schema.Struct({ messages: Schema.Array(SessionLine) })
  },
  {
    event: "transcript",
    description: "The merged transcript, before any suggestion (it replaces any `lines`)",
    data: Schema.Struct({ messages: Schema.Array(SessionMessage) })
  },
  DeltaDoc,
  SuggestionDoc,
  BlockedDoc,
  {
    event: "completed",
    description: "Terminal: the session's final summary, its suggestions as saved and what its AI calls cost",
    data: Schema.Struct({ suggestions: Schema.Array(SessionSuggestion), costMicros: Schema.Int })
  },
  {
    event: "failed",
    description: "Terminal: the session failed with this code",
    data: Schema.Struct({ code: FailureCode, message: Schema.String })
  },
  {
    event: "cancelled",
    description: "Terminal: the session was cancelled",
    data: Schema.Struct({}).annotations({ jsonSchema: { type: "object", properties: {}, additionalProperties: false } })
  }
]

const EVENTS_DESCRIPTION =
  "Server-Sent Events: `retry:` first, then the events, `id:` being the event's sequence number (send it back " +
  "as `Last-Event-ID` to resume). The response ends after the terminal event (`completed`, `failed` or " +
  "`cancelled`); a stream that could only give a terminal snapshot still ends with the terminal event."

/**
 * The user's fixes to a transcript: each names a message by `position` and sets its `sender`
 * and/or `text` (a fixed message gets confidence 1). Setting the same values again changes
 * nothing (idempotent). Only for a completed or failed session.
 */
export const TranscriptFix = Schema.Struct({
  position: Schema.Int.pipe(Schema.nonNegative()),
  sender: Schema.optionalWith(SessionSender, { exact: true }),
  text: Schema.optionalWith(LongText(MAX_MESSAGE_CHARS), { exact: true })
}).pipe(
  Schema.filter((fix) =>
    fix.sender !== undefined || fix.text !== undefined
      ? undefined
      : { path: ["sender"], message: "Give a sender, a text or both" }
  )
)
export type TranscriptFix = typeof TranscriptFix.Type

export const PatchTranscript = Schema.Struct({
  messages: Schema.Array(TranscriptFix).pipe(Schema.minItems(1), Schema.maxItems(MAX_SCREENSHOT_MESSAGES))
})
  .pipe(
    Schema.filter((input) =>
      new Set(input.messages.map((m) => m.position)).size === input.messages.length
        ? undefined
        : { path: ["messages"], message: "Each position may appear once" }
    )
  )
  .annotations({ identifier: "PatchTranscript", parseOptions: { onExcessProperty: "error", errors: "all" } })
export type PatchTranscript = typeof PatchTranscript.Type

/** A new batch of suggestions from the stored transcript (no OCR again). */
export const RegenerateSuggestions = Schema.Struct({
  /** Default: the session's tone. */
  tone: Schema.optionalWith(Tone, { exact: true }),
  /** What to do differently, e.g. "shorter, ask about her dog". */
  instruction: Schema.optionalWith(LongText(300), { exact: true })
}).annotations({
  identifier: "RegenerateSuggestions",
  parseOptions: { onExcessProperty: "error", errors: "all" }
})
export type RegenerateSuggestions = typeof RegenerateSuggestions.Type

/** The new batch, as saved. */
export const SuggestionBatch = Schema.Struct({
  batch: Schema.Int,
  suggestions: Schema.Array(SessionSuggestion)
}).annotations({ identifier: "SuggestionBatch" })
export type SuggestionBatch = typeof SuggestionBatch.Type

/** The regeneration's events with `Accept: text/event-stream`. */
export const REGENERATION_STREAM_EVENTS: ReadonlyArray<SseEventDoc> = [
  DeltaDoc,
  SuggestionDoc,
  BlockedDoc,
  {
    event: "final",
    description: "Terminal: the batch's number and its suggestions as saved",
    data: SuggestionBatch
  },
  {
    event: "failed",
    description:
      "Terminal: the batch failed; the suggestions saved before stay saved (a session deleted meanwhile: " +
      "NOT_FOUND; an account erased meanwhile: UNAUTHORIZED with `details.reason` `account-erased`)",
    data: Schema.Struct({
      code: FailureCode,
      message: Schema.String,
      details: Schema.optional(Schema.Unknown),
      batch: Schema.Int,
      suggestions: Schema.Array(SessionSuggestion)
    })
  }
]

const REGENERATE_SSE =
  "With `Accept: text/event-stream`, Server-Sent Events (see the text/event-stream response, ids " +
  "`<batch>:<n>`); a reconnect carrying `Last-Event-ID` never regenerates: 204. Otherwise the saved batch in the envelope."

export const ListSessionsParams = Schema.Struct({
  ...PageParams.fields,
  matchId: Schema.optional(
    ResourceId.annotations({
      description: "Only the sessions of this match (one of the caller's: another user's match lists nothing)"
    })
  )
})

const SessionPath = Schema.Struct({ sessionId: ResourceId })
const SuggestionPath = Schema.Struct({ sessionId: ResourceId, suggestionId: ResourceId })

export class SessionsGroup extends HttpApiGroup.make("sessions")
  .add(
    HttpApiEndpoint.post("create", "/")
      .annotate(OpenApi.Summary, "Start a session from chat screenshots")
      .setPayload(CreateSession)
      .addSuccess(Envelope(Session), { status: 202 })
      .addError(NotFoundEnvelope)
      .addError(UploadNotReceivedEnvelope)
      .addError(UploadExpiredEnvelope)
      .addError(UploadAlreadyUsedEnvelope)
      .addError(UploadSizeMismatchEnvelope)
      .addError(UploadTypeMismatchEnvelope)
      .addError(UploadContentMismatchEnvelope)
      .addError(UploadPurposeMismatchEnvelope)
      .addError(ImageTooLargeEnvelope)
      .addError(ImageUnreadableEnvelope)
      .addError(QuotaExceededEnvelope)
      .addError(ServiceUnavailableEnvelope)
      .addError(IdempotencyKeyReusedEnvelope)
      .addError(IdempotencyKeyInFlightEnvelope)
      .annotate(
        OpenApi.Description,
        "Takes the uploads (each must be the caller's, uploaded, verified and unused; a refusal names the " +
          "upload in `details.uploadId`) and queues the session; follow it with `GET /sessions/:id/events` or poll."
      )
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .annotate(OpenApi.Summary, "List sessions")
      .setUrlParams(ListSessionsParams)
      .addSuccess(Envelope(Page(SessionSummary)))
  )
  .add(
    HttpApiEndpoint.get("get", "/:sessionId")
      .annotate(OpenApi.Summary, "Get a session")
      .setPath(SessionPath)
      .addSuccess(Envelope(Session))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.get("events", "/:sessionId/events")
      .annotate(OpenApi.Summary, "Follow a session's progress")
      .setPath(SessionPath)
      .addSuccess(
        HttpApiSchema.Text({ contentType: "text/event-stream" }).annotations({ description: EVENTS_DESCRIPTION })
      )
      .addError(NotFoundEnvelope)
      .annotate(
        OpenApi.Transform,
        withEventStream({
          description: EVENTS_DESCRIPTION,
          events: SESSION_STREAM_EVENTS,
          lastEventId: "The last seq received: the events after it (a snapshot first if they are no longer kept)",
          ended:
            "The session is finished and `Last-Event-ID` is at or past its terminal event (or its progress has " +
            "expired): nothing more will come; stop reconnecting (GET the session for its state)."
        })
      )
  )
  .add(
    HttpApiEndpoint.patch("patchTranscript", "/:sessionId/transcript")
      .annotate(OpenApi.Summary, "Correct a session's transcript")
      .setPath(SessionPath)
      .setPayload(PatchTranscript)
      .addSuccess(Envelope(Session))
      .addError(NotFoundEnvelope)
      .addError(ConflictEnvelope)
      .annotate(
        OpenApi.Description,
        "Fixes speakers or words of the transcript (by position; idempotent). 409 CONFLICT unless the " +
          "session is completed or failed; a position not in the transcript is a VALIDATION_ERROR."
      )
  )
  .add(
    HttpApiEndpoint.post("regenerate", "/:sessionId/suggestions")
      .annotate(OpenApi.Summary, "Regenerate a session's suggestions")
      .setPath(SessionPath)
      .setPayload(RegenerateSuggestions)
      .addSuccess(Envelope(SuggestionBatch))
      .addError(NotFoundEnvelope)
      .addError(ConflictEnvelope)
      .addError(SafetyBlockedEnvelope)
      .addError(QuotaExceededEnvelope)
      .addError(AiUnavailableEnvelope)
      .addError(AiRequestRejectedEnvelope)
      .addError(AiInvalidOutputEnvelope)
      .addError(IdempotencyKeyReusedEnvelope)
      .addError(IdempotencyKeyInFlightEnvelope)
      .addError(ServiceUnavailableEnvelope)
      .addError(AiEmptyResultEnvelope)
      .annotate(
        OpenApi.Description,
        "Writes a new batch of suggestions from the stored transcript, with another tone and/or an " +
          "instruction, never repeating an earlier suggestion of the session. 409 CONFLICT unless the " +
          "session is completed with a transcript. A batch in which no line could be kept is asked for " +
          "once more, then answers 502 AI_EMPTY_RESULT (nothing saved, the regeneration not counted). " +
          REGENERATE_SSE
      )
      .annotate(
        OpenApi.Transform,
        withEventStream({
          description:
            "`retry:` first, then the events in order, each with the id `<batch>:<n>`; the response ends " +
            "after the terminal event (`final` or `failed`).",
          events: REGENERATION_STREAM_EVENTS,
          lastEventId:
            "Sent by an EventSource reconnecting: the request never regenerates (nor counts) and answers 204",
          ended:
            "A reconnect (`Last-Event-ID` sent with `Accept: text/event-stream`): the batch ended with its terminal " +
            "event or stopped with the connection; stop reconnecting (GET the session for its suggestions). " +
            "The same answer whatever the id names."
        })
      )
  )
  .add(
    HttpApiEndpoint.post("like", "/:sessionId/suggestions/:suggestionId/like")
      .annotate(OpenApi.Summary, "Like a suggestion")
      .setPath(SuggestionPath)
      .addSuccess(Envelope(SessionSuggestion))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.del("unlike", "/:sessionId/suggestions/:suggestionId/like")
      .annotate(OpenApi.Summary, "Clear a suggestion's like")
      .setPath(SuggestionPath)
      .addSuccess(Envelope(SessionSuggestion))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.post("dislike", "/:sessionId/suggestions/:suggestionId/dislike")
      .annotate(OpenApi.Summary, "Dislike a suggestion")
      .setPath(SuggestionPath)
      .setPayload(DislikeBody)
      .addSuccess(Envelope(SessionSuggestion))
      .addError(NotFoundEnvelope)
      .annotate(OpenApi.Transform, withOptionalBody)
  )
  .add(
    HttpApiEndpoint.del("undislike", "/:sessionId/suggestions/:suggestionId/dislike")
      .annotate(OpenApi.Summary, "Clear a suggestion's dislike")
      .setPath(SuggestionPath)
      .addSuccess(Envelope(SessionSuggestion))
      .addError(NotFoundEnvelope)
      .annotate(
        OpenApi.Description,
        "Clears the caller's dislike of the suggestion and its reason (a like stays as it is); idempotent. " +
          "Another user's session or suggestion is 404 NOT_FOUND, as a missing one."
      )
  )
  .add(
    HttpApiEndpoint.post("cancel", "/:sessionId/cancel")
      .annotate(OpenApi.Summary, "Cancel a session")
      .setPath(SessionPath)
      .addSuccess(Envelope(Session))
      .addError(NotFoundEnvelope)
      .addError(ServiceUnavailableEnvelope)
  )
  .add(
    HttpApiEndpoint.del("delete", "/:sessionId")
      .annotate(OpenApi.Summary, "Delete a session")
      .setPath(SessionPath)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFoundEnvelope)
      .addError(ServiceUnavailableEnvelope)
  )
  .middleware(Authentication)
  .prefix("/sessions")
  .annotate(
    OpenApi.Description,
    "Chat analysis: screenshots read into a transcript, reply suggestions from it, progress as Server-Sent Events, and feedback."
  ) {}
