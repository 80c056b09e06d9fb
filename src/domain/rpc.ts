/**
 * The RPC contract (`@effect/rpc`), served at `/rpc`: the app's operations as procedures, on the
 * same schemas and tagged errors as the HttpApi. Client-safe: a typed client imports this file
 * (and src/client/rpc-client.ts), never server code.
 *
 * Every procedure runs behind `RpcAuthentication`: `authorization: Bearer <jwt>`, read from the
 * request's headers (HTTP), the upgrade request's (WebSocket), or the message's own, which win.
 * `users.eraseMe` alone runs behind `RpcTokenAuthentication` (the token verified, no user resolved),
 * so erasing again answers as over REST. A call that would fail `NotFound` fails `Unauthorized`
 * (`account-erased`) once the account's erasure has started (its token still mapped by a cache).
 *
 * Every app operation of the HttpApi has a procedure here (test/unit/domain/rpc-coverage.test.ts
 * maps each one). Not app operations, so not here: the Clerk webhook (`POST /webhooks/clerk`,
 * Clerk's server calling ours, signed with svix) and the health probes (for the orchestrator).
 */
import { Rpc, RpcGroup, RpcMiddleware } from "@effect/rpc"
import { Schema } from "effect"
import { ClerkIdentity, CurrentUser } from "./auth.ts"
import {
  AiEmptyResult,
  AiInvalidOutput,
  AiRequestRejected,
  AiUnavailable,
  BadRequest,
  Conflict,
  ImageTooLarge,
  ImageUnreadable,
  NotFound,
  PayloadTooLarge,
  QuotaExceeded,
  RateLimited,
  SafetyBlocked,
  ServiceUnavailable,
  Unauthorized,
  UnsupportedMediaType,
  UploadAlreadyUsed,
  UploadContentMismatch,
  UploadExpired,
  UploadNotReceived,
  UploadPurposeMismatch,
  UploadSizeMismatch,
  UploadTypeMismatch,
  ValidationError
} from "./errors.ts"
import { Token } from "./fields.ts"
import { CreateMatch, Match, UpdateMatch } from "./matches.ts"
import { BlockedReason, DislikeOpener, GenerateOpeners, Opener, OpenerEvent } from "./openers.ts"
import { Page, ResourceId } from "./pagination.ts"
import {
  CreateSession,
  PatchTranscript,
  RegenerateSuggestions,
  Session,
  SessionStreamItem,
  SessionSuggestion,
  SessionSummary
} from "./sessions.ts"
import { CreateUpload, Upload, UploadTicket } from "./uploads.ts"
import { UpdateProfile, UserExport, UserProfile } from "./users.ts"

/**
 * Verifies the bearer token and provides `CurrentUser`, as the HttpApi's `Authentication` does;
 * fails with `Unauthorized` (`details.reason` as over REST). `requiredForClient`: a typed client
 * supplies the token per request (src/client/rpc-client.ts), so a long-lived WebSocket can carry
 * refreshed tokens.
 */
/** Authenticates every call, and counts it against the caller's call limit (`RateLimited` over it). */
export class RpcAuthentication extends RpcMiddleware.Tag<RpcAuthentication>()("RpcAuthentication", {
  provides: CurrentUser,
  failure: Schema.Union(Unauthorized, RateLimited),
  requiredForClient: true
}) {}

/**
 * The token verified, the Clerk identity provided, no user resolved (as the HttpApi's
 * `TokenAuthentication`): for `users.eraseMe`, which must work on an account already erased.
 */
export class RpcTokenAuthentication extends RpcMiddleware.Tag<RpcTokenAuthentication>()("RpcTokenAuthentication", {
  provides: ClerkIdentity,
  failure: Schema.Union(Unauthorized, RateLimited),
  requiredForClient: true
}) {}

/** Cursor pagination, as numbers (the HttpApi's `PageParams` parse query strings). */
const pageFields = {
  limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { exact: true }),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: Schema.optionalWith(Token(200), { exact: true })
}

const AiErrors = [QuotaExceeded, AiUnavailable, AiRequestRejected, AiInvalidOutput] as const

/** What taking an upload can answer: it is not usable, and why (`details.uploadId` names it). */
const UploadErrors = [
  UploadNotReceived,
  UploadExpired,
  UploadAlreadyUsed,
  UploadSizeMismatch,
  UploadTypeMismatch,
  UploadContentMismatch,
  UploadPurposeMismatch
] as const

export const UsersRpcs = RpcGroup.make(
  /** The caller's user. `Unauthorized` (`account-erased`) if it was erased meanwhile. */
  Rpc.make("me", { success: UserProfile, error: Unauthorized }),
  /** As `PATCH /users/me`: `null` clears a field. `Unauthorized` (`account-erased`) if it was erased meanwhile. */
  Rpc.make("updateMe", { payload: UpdateProfile, success: UserProfile, error: Unauthorized }),
  /** As `GET /users/me/export`; `RateLimited` over RATE_LIMIT_EXPORT_USER (`details.retryAfterMs`). */
  Rpc.make("exportMe", { success: UserExport, error: Schema.Union(Unauthorized, RateLimited) })
)
  .middleware(RpcAuthentication)
  .prefix("users.")

export const AccountRpcs = RpcGroup.make(
  /** As `DELETE /users/me`: erases the account and everything it owns; again on a second call. */
  Rpc.make("eraseMe", { success: Schema.Void })
)
  .middleware(RpcTokenAuthentication)
  .prefix("users.")

export const MatchesRpcs = RpcGroup.make(
  /**
   * As `POST /matches`; a `profileUploadId` is taken (an upload with purpose `profile`).
   * `Unauthorized` (`account-erased`) if the account was erased meanwhile.
   */
  Rpc.make("create", {
    payload: CreateMatch,
    success: Match,
    error: Schema.Union(SafetyBlocked, NotFound, Unauthorized, ...UploadErrors)
  }),
  /** Newest first. */
  Rpc.make("list", {
    payload: Schema.Struct(pageFields),
    success: Page(Match),
    /** A `cursor` that is not a `nextCursor`. */
    error: ValidationError
  }),
  Rpc.make("get", { payload: { matchId: ResourceId }, success: Match, error: Schema.Union(NotFound, Unauthorized) }),
  /**
   * As `PATCH /matches/:id`: `null` clears a field. `Unauthorized` (`account-erased`) if the account
   * was erased meanwhile (a new `profileUploadId` is refused).
   */
  Rpc.make("update", {
    payload: { matchId: ResourceId, ...UpdateMatch.fields },
    success: Match,
    error: Schema.Union(NotFound, SafetyBlocked, Unauthorized, ...UploadErrors)
  }),
  Rpc.make("delete", {
    payload: { matchId: ResourceId },
    success: Schema.Void,
    error: Schema.Union(NotFound, Unauthorized)
  })
)
  .middleware(RpcAuthentication)
  .prefix("matches.")

export const UploadsRpcs = RpcGroup.make(
  /** As `POST /uploads`: a pre-signed URL for one PUT of exactly this type and length. */
  Rpc.make("create", {
    payload: CreateUpload,
    success: UploadTicket,
    /** `Unauthorized` (`account-erased`): the account was erased meanwhile. */
    error: Schema.Union(UnsupportedMediaType, PayloadTooLarge, Unauthorized)
  }),
  /**
   * The upload's status (a pending one is checked against storage). `Unauthorized`
   * (`account-erased`): the account was erased meanwhile.
   */
  Rpc.make("get", { payload: { uploadId: ResourceId }, success: Upload, error: Schema.Union(NotFound, Unauthorized) })
)
  .middleware(RpcAuthentication)
  .prefix("uploads.")

export const OpenersRpcs = RpcGroup.make(
  /**
   * Writes `count` openers: `delta`s, `done` (saved) or `blocked` per line, then `final`. The
   * stream fails `NotFound` when the match is deleted meanwhile, `Unauthorized` (`account-erased`)
   * when the account is erased meanwhile.
   */
  Rpc.make("generate", {
    payload: GenerateOpeners,
    success: OpenerEvent,
    error: Schema.Union(NotFound, Unauthorized, SafetyBlocked, ...AiErrors),
    stream: true
  }),
  /** History, newest first. */
  Rpc.make("list", {
    payload: Schema.Struct({ ...pageFields, matchId: Schema.optionalWith(ResourceId, { exact: true }) }),
    success: Page(Opener),
    /** A `cursor` that is not a `nextCursor`. */
    error: ValidationError
  }),
  Rpc.make("like", { payload: { openerId: ResourceId }, success: Opener, error: Schema.Union(NotFound, Unauthorized) }),
  Rpc.make("unlike", {
    payload: { openerId: ResourceId },
    success: Opener,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  Rpc.make("dislike", {
    payload: { openerId: ResourceId, ...DislikeOpener.fields },
    success: Opener,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  /** Clears a dislike and its reason (a like stays); idempotent. */
  Rpc.make("undislike", {
    payload: { openerId: ResourceId },
    success: Opener,
    error: Schema.Union(NotFound, Unauthorized)
  })
)
  .middleware(RpcAuthentication)
  .prefix("openers.")

/** One item of a regeneration: deltas, each suggestion as saved, then `Final` with the batch number. */
export const RegenerationEvent = Schema.Union(
  Schema.TaggedStruct("Delta", { index: Schema.Int, text: Schema.String }),
  Schema.TaggedStruct("Suggestion", { index: Schema.Int, suggestion: SessionSuggestion }),
  /** The text streamed so far for `index` was dropped (unsafe, duplicate, too long): the next line streams under it. */
  Schema.TaggedStruct("Blocked", { index: Schema.Int, reason: BlockedReason }),
  Schema.TaggedStruct("Final", { batch: Schema.Int })
).annotations({ identifier: "RegenerationEvent" })
export type RegenerationEvent = typeof RegenerationEvent.Type

export const SessionsRpcs = RpcGroup.make(
  /**
   * Takes the uploads and queues the session (as `POST /sessions`). `Unauthorized`
   * (`account-erased`) if the account was erased meanwhile (its uploads went with it).
   */
  Rpc.make("create", {
    payload: CreateSession,
    success: Session,
    error: Schema.Union(
      NotFound,
      Unauthorized,
      ...UploadErrors,
      ImageTooLarge,
      ImageUnreadable,
      QuotaExceeded,
      ServiceUnavailable
    )
  }),
  /** Newest first; `matchId`: only that match's sessions. */
  Rpc.make("list", {
    payload: Schema.Struct({ ...pageFields, matchId: Schema.optionalWith(ResourceId, { exact: true }) }),
    success: Page(SessionSummary),
    /** A `cursor` that is not a `nextCursor`. */
    error: ValidationError
  }),
  Rpc.make("get", {
    payload: { sessionId: ResourceId },
    success: Session,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  /**
   * The session's progress until a terminal event (`Completed`, `Failed`, `Cancelled`) or a
   * terminal snapshot. Resumable: pass the last `seq` seen as `afterSeq` to get exactly what
   * came after it (a `Snapshot` first when that is no longer possible).
   */
  Rpc.make("follow", {
    payload: Schema.Struct({
      sessionId: ResourceId,
      afterSeq: Schema.optionalWith(Schema.NonNegativeInt, { exact: true })
    }),
    success: SessionStreamItem,
    /**
     * `NotFound`: no such session of yours, or deleted while followed. `Unauthorized`
     * (`account-erased`): the account was erased, before or while followed. `ServiceUnavailable`: the
     * progress feed failed; resume with `afterSeq`.
     */
    error: Schema.Union(NotFound, Unauthorized, ServiceUnavailable),
    stream: true
  }),
  /** A new batch of suggestions from the stored transcript (as `POST /sessions/:id/suggestions`). */
  Rpc.make("regenerate", {
    payload: { sessionId: ResourceId, ...RegenerateSuggestions.fields },
    success: RegenerationEvent,
    /**
     * `AiEmptyResult`: no line could be kept, twice; nothing saved, not counted. The stream fails
     * `NotFound` when the session is deleted meanwhile, `Unauthorized` (`account-erased`) when the
     * account is erased meanwhile.
     */
    error: Schema.Union(NotFound, Unauthorized, Conflict, SafetyBlocked, AiEmptyResult, ...AiErrors),
    stream: true
  }),
  /**
   * As `PATCH /sessions/:id/transcript`: `Conflict` unless the session is completed or failed;
   * `BadRequest` for a position not in the transcript (`details.positions`).
   */
  Rpc.make("patchTranscript", {
    payload: Schema.extend(Schema.Struct({ sessionId: ResourceId }), PatchTranscript),
    success: Session,
    error: Schema.Union(NotFound, Conflict, BadRequest, Unauthorized)
  }),
  /**
   * Feedback on a suggestion: the suggestion as it is now. `NotFound` if its session is deleted
   * meanwhile, `Unauthorized` (`account-erased`) if the account is erased meanwhile.
   */
  Rpc.make("like", {
    payload: { sessionId: ResourceId, suggestionId: ResourceId },
    success: SessionSuggestion,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  Rpc.make("unlike", {
    payload: { sessionId: ResourceId, suggestionId: ResourceId },
    success: SessionSuggestion,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  Rpc.make("dislike", {
    payload: { sessionId: ResourceId, suggestionId: ResourceId, ...DislikeOpener.fields },
    success: SessionSuggestion,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  /** Clears a dislike and its reason (a like stays); idempotent. */
  Rpc.make("undislike", {
    payload: { sessionId: ResourceId, suggestionId: ResourceId },
    success: SessionSuggestion,
    error: Schema.Union(NotFound, Unauthorized)
  }),
  /** As `POST /sessions/:id/cancel`: the session, cancelled unless it had already ended. */
  Rpc.make("cancel", {
    payload: { sessionId: ResourceId },
    success: Session,
    error: Schema.Union(NotFound, Unauthorized, ServiceUnavailable)
  }),
  /** As `DELETE /sessions/:id`: the session, its images and its progress. */
  Rpc.make("delete", {
    payload: { sessionId: ResourceId },
    success: Schema.Void,
    error: Schema.Union(NotFound, Unauthorized, ServiceUnavailable)
  })
)
  .middleware(RpcAuthentication)
  .prefix("sessions.")

/**
 * What any procedure can answer when the server itself fails: `ServiceUnavailable` while its
 * database is out of reach (try again shortly); any other defect dies with a generic
 * `{ name: "InternalError", message }`, what went wrong only in the server's log.
 */
export class RpcServerFailures extends RpcMiddleware.Tag<RpcServerFailures>()("RpcServerFailures", {
  wrap: true,
  failure: ServiceUnavailable
}) {}

/** Every procedure: `users.*`, `matches.*`, `uploads.*`, `openers.*`, `sessions.*`. */
export class WingmateRpcs extends UsersRpcs.merge(
  AccountRpcs,
  MatchesRpcs,
  UploadsRpcs,
  OpenersRpcs,
  SessionsRpcs
).middleware(RpcServerFailures) {}
