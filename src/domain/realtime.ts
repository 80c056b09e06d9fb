/**
 * The WebSocket protocol at `/ws`: JSON text frames, each an object with a `type`. The app
 * authenticates after the upgrade (the token travels in a frame, never in the URL), keeps the
 * connection alive with JSON pings (React Native cannot send protocol pings), follows sessions
 * and streams openers. README "Realtime" documents it with examples.
 */
import { Schema } from "effect"
import { PlainString, Token } from "./fields.ts"
import { ResourceId } from "./pagination.ts"
import { GenerationMeta, Opener, BlockedReason } from "./openers.ts"

const RequestId = Token(64)
const Seq = Schema.Int.pipe(Schema.nonNegative())

const strict = { parseOptions: { onExcessProperty: "error", errors: "all" } } as const

/** Client → server. `opener.generate` also carries the REST body's fields (decoded on their own). */
export const ClientFrame = Schema.Union(
  Schema.Struct({ type: Schema.Literal("auth"), token: Token(8192) }).annotations(strict),
  Schema.Struct({
    type: Schema.Literal("ping"),
    // Echoed back as sent; the frame size cap bounds it. A finite number: JSON parses 1e400 to
    // Infinity, which JSON cannot say back (it would be echoed as null).
    t: Schema.optional(Schema.Union(Schema.Finite, PlainString()))
  }),
  Schema.Struct({
    type: Schema.Literal("subscribe"),
    sessionId: ResourceId,
    afterSeq: Schema.optional(Seq)
  }).annotations(strict),
  Schema.Struct({ type: Schema.Literal("unsubscribe"), sessionId: ResourceId }).annotations(strict),
  Schema.Struct({ type: Schema.Literal("opener.generate"), requestId: RequestId }),
  Schema.Struct({ type: Schema.Literal("abort"), requestId: RequestId }).annotations(strict)
)
export type ClientFrame = typeof ClientFrame.Type

export const CLIENT_FRAME_TYPES: ReadonlyArray<ClientFrame["type"]> = [
  "auth",
  "ping",
  "subscribe",
  "unsubscribe",
  "opener.generate",
  "abort"
]

/** Server → client. */
export const ServerFrame = Schema.Union(
  Schema.Struct({ type: Schema.Literal("auth.ok"), userId: Schema.String, expiresAt: Schema.DateFromString }),
  /** The token expires soon: send a fresh `auth` before `expiresAt` or the connection closes (4401). */
  Schema.Struct({ type: Schema.Literal("auth.expiring"), expiresAt: Schema.DateFromString }),
  Schema.Struct({ type: Schema.Literal("pong"), t: Schema.optional(Schema.Union(Schema.Finite, Schema.String)) }),
  Schema.Struct({ type: Schema.Literal("subscribed"), sessionId: Schema.String }),
  Schema.Struct({ type: Schema.Literal("unsubscribed"), sessionId: Schema.String }),
  /** `event` and `data` are exactly the SSE stream's (`snapshot`, `status`, `lines`, `transcript`, `delta`, …). */
  Schema.Struct({
    type: Schema.Literal("session.event"),
    sessionId: Schema.String,
    seq: Schema.Int,
    event: Schema.String,
    data: Schema.Unknown
  }),
  Schema.Struct({
    type: Schema.Literal("opener.delta"),
    requestId: Schema.String,
    index: Schema.Int,
    text: Schema.String
  }),
  Schema.Struct({ type: Schema.Literal("opener.saved"), requestId: Schema.String, index: Schema.Int, opener: Opener }),
  Schema.Struct({
    type: Schema.Literal("opener.blocked"),
    requestId: Schema.String,
    index: Schema.Int,
    reason: BlockedReason
  }),
  /** The generation ended; openers already `saved` are the result. */
  Schema.Struct({ type: Schema.Literal("opener.done"), requestId: Schema.String, meta: GenerationMeta }),
  Schema.Struct({ type: Schema.Literal("opener.aborted"), requestId: Schema.String }),
  Schema.Struct({
    type: Schema.Literal("opener.error"),
    requestId: Schema.String,
    code: Schema.String,
    message: Schema.String,
    /** `{ reason: "account-erased" }` when the account was erased during the generation. */
    details: Schema.optional(Schema.Unknown)
  }),
  Schema.Struct({
    type: Schema.Literal("error"),
    code: Schema.String,
    message: Schema.String,
    requestId: Schema.optional(Schema.String),
    details: Schema.optional(Schema.Unknown)
  })
)
export type ServerFrame = typeof ServerFrame.Type

/** Why the server closed a connection (4xxx mirror HTTP statuses). */
export const CloseCode = {
  /** No `auth` in time, a refused token, or a token that expired without a fresh `auth`. */
  Unauthenticated: 4401,
  /** Nothing received for longer than the idle timeout (send `ping`). */
  Idle: 4408,
  /** Too many connections for this user or address. */
  TooManyConnections: 4429,
  /** Frames arriving faster than they can be handled. */
  Flooding: 1008,
  /** A frame above the hard size cap. */
  TooBig: 1009,
  /** The client does not read fast enough: its outgoing buffer is full. */
  SlowConsumer: 1013,
  /** The server is shutting down: reconnect. */
  GoingAway: 1001
} as const

/** Error codes only the socket uses (the others are the REST catalog's). */
export const SocketErrorCode = {
  UnknownType: "UNKNOWN_MESSAGE_TYPE",
  BinaryFrame: "BINARY_NOT_SUPPORTED",
  DuplicateRequest: "DUPLICATE_REQUEST_ID",
  TokenExpired: "TOKEN_EXPIRED"
} as const
