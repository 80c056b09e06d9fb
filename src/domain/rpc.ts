/**
 * The RPC contract (`@effect/rpc`), served at `/rpc`: the app's operations as procedures, on the
 * same schemas and tagged errors as the HttpApi. Client-safe: a typed client imports this file
 * (and src/client/rpc-client.ts), never server code.
 *
 * Every procedure runs behind `RpcAuthentication`: `authorization: Bearer <jwt>`, read from the
 * request's headers (HTTP), the upgrade request's (WebSocket), or the message's own, which win.
 */
import { Rpc, RpcGroup, RpcMiddleware } from "@effect/rpc"
import { Schema } from "effect"
import { CurrentUser } from "./auth.ts"
import {
  AiEmptyResult,
  AiInvalidOutput,
  AiRequestRejected,
  AiUnavailable,
  Conflict,
  ImageTooLarge,
  ImageUnreadable,
  NotFound,
  QuotaExceeded,
  RateLimited,
  SafetyBlocked,
  ServiceUnavailable,
  Unauthorized,
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
import { DislikeOpener, GenerateOpeners, Opener, OpenerEvent } from "./openers.ts"
import { Page, ResourceId } from "./pagination.ts"
import { CreateSession, RegenerateSuggestions, Session, SessionStreamItem, SessionSuggestion } from "./sessions.ts"
import { UserProfile } from "./users.ts"

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

/** Cursor pagination, as numbers (the HttpApi's `PageParams` parse query strings). */
const pageFields = {
  limit: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 100)), { exact: true }),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: Schema.optionalWith(Token(200), { exact: true })
}

const AiErrors = [QuotaExceeded, AiUnavailable, AiRequestRejected, AiInvalidOutput] as const

export const UsersRpcs = RpcGroup.make(
  /** The caller's user. `Unauthorized` (`account-erased`) if it was erased meanwhile. */
  Rpc.make("me", { success: UserProfile, error: Unauthorized })
)
  .middleware(RpcAuthentication)
  .prefix("users.")

export const OpenersRpcs = RpcGroup.make(
  /** Writes `count` openers: `delta`s, `done` (saved) or `blocked` per line, then `final`. */
  Rpc.make("generate", {
    payload: GenerateOpeners,
    success: OpenerEvent,
    error: Schema.Union(NotFound, SafetyBlocked, ...AiErrors),
    stream: true
  }),
  /** History, newest first. */
  Rpc.make("list", {
    payload: Schema.Struct({ ...pageFields, matchId: Schema.optionalWith(ResourceId, { exact: true }) }),
    success: Page(Opener),
    /** A `cursor` that is not a `nextCursor`. */
    error: ValidationError
  }),
  Rpc.make("like", { payload: { openerId: ResourceId }, success: Opener, error: NotFound }),
  Rpc.make("unlike", { payload: { openerId: ResourceId }, success: Opener, error: NotFound }),
  Rpc.make("dislike", {
    payload: { openerId: ResourceId, ...DislikeOpener.fields },
    success: Opener,
    error: NotFound
  }),
  /** Clears a dislike and its reason (a like stays); idempotent. */
  Rpc.make("undislike", { payload: { openerId: ResourceId }, success: Opener, error: NotFound })
)
  .middleware(RpcAuthentication)
  .prefix("openers.")

/** One item of a regeneration: deltas, each suggestion as saved, then `Final` with the batch number. */
export const RegenerationEvent = Schema.Union(
  Schema.TaggedStruct("Delta", { index: Schema.Int, text: Schema.String }),
  Schema.TaggedStruct("Suggestion", { index: Schema.Int, suggestion: SessionSuggestion }),
  Schema.TaggedStruct("Final", { batch: Schema.Int })
).annotations({ identifier: "RegenerationEvent" })
export type RegenerationEvent = typeof RegenerationEvent.Type

export const SessionsRpcs = RpcGroup.make(
  /** Takes the uploads and queues the session (as `POST /sessions`). */
  Rpc.make("create", {
    payload: CreateSession,
    success: Session,
    error: Schema.Union(
      NotFound,
      UploadNotReceived,
      UploadExpired,
      UploadAlreadyUsed,
      UploadSizeMismatch,
      UploadTypeMismatch,
      UploadContentMismatch,
      UploadPurposeMismatch,
      ImageTooLarge,
      ImageUnreadable,
      QuotaExceeded,
      ServiceUnavailable
    )
  }),
  Rpc.make("get", { payload: { sessionId: ResourceId }, success: Session, error: NotFound }),
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
    /** `ServiceUnavailable`: the progress feed failed; resume with `afterSeq`. */
    error: Schema.Union(NotFound, ServiceUnavailable),
    stream: true
  }),
  /** A new batch of suggestions from the stored transcript (as `POST /sessions/:id/suggestions`). */
  Rpc.make("regenerate", {
    payload: { sessionId: ResourceId, ...RegenerateSuggestions.fields },
    success: RegenerationEvent,
    /** `AiEmptyResult`: no line could be kept, twice; nothing saved, not counted. */
    error: Schema.Union(NotFound, Conflict, SafetyBlocked, AiEmptyResult, ...AiErrors),
    stream: true
  })
)
  .middleware(RpcAuthentication)
  .prefix("sessions.")

/** Every procedure: `users.*`, `openers.*`, `sessions.*`. */
export class WingmateRpcs extends UsersRpcs.merge(OpenersRpcs, SessionsRpcs) {}
