/**
 * One WebSocket connection, as a scoped Effect that lasts as long as the socket: frames go
 * through one inbox (handled in order); subscriptions and generations are fibers in FiberMaps, so
 * closing the socket (or the server) interrupts all of them, provider requests included. The
 * connection's deadlines (auth, token expiry, silence) are checked by one sweeper for all.
 */
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  FiberMap,
  Option,
  ParseResult,
  Queue,
  Ref,
  Schema,
  Stream
} from "effect"
import type { RawData, WebSocket } from "ws"
import type { AiError } from "../../core/ai/errors.ts"
import { aiErrorToWire, aiFailuresToWire } from "../../core/ai/wire.ts"
import { AppConfig } from "../../core/config.ts"
import { randomUUID } from "node:crypto"
import { jsonLimitExceeded } from "../../core/http/json-limits.ts"
import { trackedIn, wsConnections, wsSubscriptions } from "../../core/metrics.ts"
import {
  makeMemoryRateLimiter,
  RateLimiter,
  type RateLimiterShape,
  type RateRule
} from "../../core/rate-limit/rate-limiter.ts"
import type { DbError } from "../../core/db/db.ts"
import type { StorageError } from "../../core/storage/model.ts"
import { type AppError, codeOf, issuesByPath, type Unauthorized } from "../../domain/errors.ts"
import { GenerateOpeners, type OpenerEvent } from "../../domain/openers.ts"
import { CLIENT_FRAME_TYPES, ClientFrame, CloseCode, ServerFrame, SocketErrorCode } from "../../domain/realtime.ts"
import type { SessionStreamItem } from "../../domain/sessions.ts"
import { OpenersService } from "../openers/openers.service.ts"
import { SessionsService } from "../sessions/sessions.service.ts"
import { wireEventOf } from "../sessions/sessions.views.ts"
import { makeAuthenticateWithExpiry } from "../users/authentication.ts"

const OPEN = 1
/** How long a closed connection may take to answer the close handshake before it is cut. */
const CLOSE_GRACE_MS = 1_000
/** The same for a slow consumer: megabytes may stand before its close frame (at most this long held). */
const SLOW_CONSUMER_CLOSE_GRACE_MS = 10_000

interface Inbound {
  readonly data: RawData
  readonly isBinary: boolean
}

interface Authenticated {
  readonly userId: string
  readonly clerkId: string
}

const AI_ERRORS: ReadonlySet<string> = new Set(Object.keys(aiFailuresToWire))

const isAiError = (error: { readonly _tag: string }): error is AiError => AI_ERRORS.has(error._tag)

const byteLength = (data: RawData) =>
  Buffer.isBuffer(data)
    ? data.length
    : Array.isArray(data)
      ? data.reduce((total, part) => total + part.length, 0)
      : data.byteLength

const textOf = (data: RawData) =>
  Buffer.isBuffer(data)
    ? data.toString("utf8")
    : Array.isArray(data)
      ? Buffer.concat(data).toString("utf8")
      : Buffer.from(data).toString("utf8")

const parseJson = Schema.decodeUnknownEither(Schema.parseJson())
const FrameType = Schema.Struct({ type: Schema.String })

/** `details.reason` of a refusal (`token-expired`, `account-erased`, …). */
const reasonOf = (error: Unauthorized): string =>
  typeof error.details === "object" && error.details !== null && "reason" in error.details
    ? String(error.details.reason)
    : "unauthorized"

const sessionEventFrame = (sessionId: string, item: SessionStreamItem): ServerFrame => ({
  type: "session.event",
  sessionId,
  ...wireEventOf(item)
})

const openerFrame = (requestId: string, event: OpenerEvent): ServerFrame => {
  switch (event._tag) {
    case "delta":
      return { type: "opener.delta", requestId, index: event.index, text: event.text }
    case "done":
      return { type: "opener.saved", requestId, index: event.index, opener: event.opener }
    case "blocked":
      return { type: "opener.blocked", requestId, index: event.index, reason: event.reason }
    case "final":
      return { type: "opener.done", requestId, meta: event.meta }
  }
}

/** Connections per user on this instance (a user's phone and tablet, not a botnet). */
class UserConnections {
  private readonly counts = new Map<string, number>()

  tryAdd(userId: string, max: number) {
    const count = this.counts.get(userId) ?? 0
    if (count >= max) return false
    this.counts.set(userId, count + 1)
    return true
  }

  remove(userId: string) {
    const count = (this.counts.get(userId) ?? 1) - 1
    if (count <= 0) this.counts.delete(userId)
    else this.counts.set(userId, count)
  }
}

/**
 * A connection's deadlines, checked by one sweeper for every connection (a fiber per connection
 * per timer would cost more memory than the socket itself): no `auth` in time, the token's
 * expiry warning and expiry, and silence.
 */
interface Deadlines {
  lastSeen: number
  authBy: number | undefined
  warnAt: number | undefined
  expiresAt: number | undefined
  readonly onAuthTimeout: Effect.Effect<void>
  readonly onExpiring: (expiresAt: number) => Effect.Effect<void>
  readonly onExpired: Effect.Effect<void>
  readonly onIdle: Effect.Effect<void>
}

export class RealtimeConnections extends Effect.Service<RealtimeConnections>()("RealtimeConnections", {
  scoped: Effect.gen(function* () {
    const appConfig = yield* AppConfig
    const config = appConfig.realtime
    const limits = appConfig.rateLimits
    const limiter = yield* RateLimiter
    const authenticateToken = yield* makeAuthenticateWithExpiry
    const sessions = yield* SessionsService
    const openers = yield* OpenersService
    const perUser = new UserConnections()
    const watched = new Set<Deadlines>()
    let open = 0

    const sweep = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      for (const watch of watched) {
        if (watch.authBy !== undefined && now >= watch.authBy) {
          watch.authBy = undefined
          yield* watch.onAuthTimeout
        }
        if (watch.warnAt !== undefined && watch.expiresAt !== undefined && now >= watch.warnAt) {
          watch.warnAt = undefined
          yield* watch.onExpiring(watch.expiresAt)
        }
        if (watch.expiresAt !== undefined && now >= watch.expiresAt) {
          watch.expiresAt = undefined
          yield* watch.onExpired
        }
        if (now - watch.lastSeen > config.idleTimeoutMs) {
          watch.lastSeen = Number.POSITIVE_INFINITY
          yield* watch.onIdle
        }
      }
    })
    // A quarter of the shortest deadline, within 25 ms – 1 s: precise enough, cheap when idle.
    const sweepEvery = Math.max(
      25,
      Math.min(1_000, Math.floor(Math.min(config.authTimeoutMs, config.idleTimeoutMs) / 4))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(Duration.millis(sweepEvery)), sweep)))

    /** Counts a call against a rule when limits are on. */
    const allowWith = (counter: RateLimiterShape) => (rule: RateRule, key: string) =>
      limits.enabled
        ? counter.consume(rule, key)
        : Effect.succeed({ allowed: true, limit: rule.limit, remaining: rule.limit, resetMs: 0, retryAfterMs: 0 })
    const allow = allowWith(limiter)
    // A connection lives in this process: its budget needs no round trip to Redis.
    const allowHere = allowWith(yield* makeMemoryRateLimiter())

    /** Serves one upgraded socket until it closes. `ip` is the client's address. */
    const serve = (ws: WebSocket, ip: string) =>
      Effect.gen(function* () {
        const closed = yield* Deferred.make<void>()
        const connectionKey = `connection:${randomUUID()}`
        const inbox = yield* Queue.dropping<Inbound>(64)
        const auth = yield* Ref.make(Option.none<Authenticated>())
        const lastRateLimitNotice = yield* Ref.make(0)
        const subscriptions = yield* FiberMap.make<string>()
        const generations = yield* FiberMap.make<string>()

        const closeSocket = (code: number, reason: string) => {
          if (ws.readyState !== OPEN) return
          ws.close(code, reason)
          // A client that does not answer the close handshake is cut. A slow consumer's close frame
          // waits behind its full buffer: cut at once, a client still reading would see 1006 and
          // never learn why, so it gets the time to read up to the frame.
          const grace = code === CloseCode.SlowConsumer ? SLOW_CONSUMER_CLOSE_GRACE_MS : CLOSE_GRACE_MS
          setTimeout(() => ws.terminate(), grace).unref()
        }
        const close = (code: number, reason: string) => Effect.sync(() => closeSocket(code, reason))

        ws.on("message", (data, isBinary) => {
          if (!Queue.unsafeOffer(inbox, { data, isBinary }))
            closeSocket(CloseCode.Flooding, "Too many frames in flight")
        })
        ws.on("close", () => Deferred.unsafeDone(closed, Exit.void))
        // Protocol errors (a frame above the hard cap, bad framing): `ws` closes the socket itself.
        ws.on("error", () => Deferred.unsafeDone(closed, Exit.void))
        open++
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            open--
            closeSocket(CloseCode.GoingAway, "Server shutting down")
          })
        )

        const send = (frame: ServerFrame) =>
          Effect.flatMap(Effect.orDie(Schema.encode(ServerFrame)(frame)), (encoded) =>
            Effect.sync(() => {
              if (ws.readyState !== OPEN) return
              ws.send(JSON.stringify(encoded))
              if (ws.bufferedAmount > config.maxBufferedBytes) {
                closeSocket(CloseCode.SlowConsumer, "Slow consumer: outgoing buffer full")
              }
            })
          )

        const sendError = (code: string, message: string, extra: { requestId?: string; details?: unknown } = {}) =>
          send({ type: "error", code, message, ...extra })

        const internal = (what: string, requestId?: string) => (cause: unknown) =>
          Effect.zipRight(
            Effect.logError(`WebSocket: ${what} failed`, cause),
            sendError("SERVICE_UNAVAILABLE", "Temporarily unavailable; try again shortly", {
              ...(requestId === undefined ? {} : { requestId })
            })
          )

        // ---- authentication ------------------------------------------------------------------

        const authenticate = (token: string) =>
          Effect.gen(function* () {
            const current = yield* Ref.get(auth)
            const refuse = (reason: string, message: string) =>
              Effect.zipRight(
                sendError("UNAUTHORIZED", message, { details: { reason } }),
                // A connection that never authenticated is closed; an authenticated one keeps its
                // current token until it expires.
                Option.isNone(current) ? close(CloseCode.Unauthenticated, "Authentication failed") : Effect.void
              )
            // A database failure is a defect here: the frame loop answers it SERVICE_UNAVAILABLE.
            const verified = yield* Effect.either(authenticateToken(token))
            if (verified._tag === "Left") return yield* refuse(reasonOf(verified.left), verified.left.message)
            const { user, expiresAt } = verified.right
            if (Option.isSome(current) && current.value.userId !== user.id) {
              return yield* sendError("FORBIDDEN", "This connection is already authenticated as another user")
            }
            if (Option.isNone(current)) {
              const rate = yield* allow(limits.wsConnectUser, `user:${user.clerkId}`)
              if (!rate.allowed || !perUser.tryAdd(user.id, config.maxConnectionsPerUser)) {
                yield* sendError("RATE_LIMITED", "Too many connections for this account", {
                  details: { retryAfterMs: rate.retryAfterMs }
                })
                return yield* close(CloseCode.TooManyConnections, "Too many connections")
              }
              yield* Effect.addFinalizer(() => Effect.sync(() => perUser.remove(user.id)))
              watch.authBy = undefined
            }
            yield* Ref.set(auth, Option.some({ userId: user.id, clerkId: user.clerkId }))
            const warnAt = expiresAt - config.expiryWarningMs
            watch.expiresAt = expiresAt
            watch.warnAt = warnAt > (yield* Clock.currentTimeMillis) ? warnAt : undefined
            yield* send({ type: "auth.ok", userId: user.id, expiresAt: new Date(expiresAt) })
          })

        // ---- sessions ------------------------------------------------------------------------

        const subscribe = (user: Authenticated, sessionId: string, afterSeq: number | undefined) =>
          Effect.gen(function* () {
            const following = yield* FiberMap.has(subscriptions, sessionId)
            if (!following && (yield* FiberMap.size(subscriptions)) >= config.maxSubscriptions) {
              return yield* sendError(
                "BAD_REQUEST",
                `At most ${config.maxSubscriptions} sessions can be followed at once`,
                {
                  details: { sessionId }
                }
              )
            }
            const followed = yield* Effect.either(sessions.follow(user.userId, sessionId, afterSeq))
            if (followed._tag === "Left") {
              const error = followed.left
              return yield* error._tag === "NotFound"
                ? sendError("NOT_FOUND", error.message, { details: { sessionId } })
                : internal("subscribe")(error)
            }
            yield* send({ type: "subscribed", sessionId })
            yield* FiberMap.run(
              subscriptions,
              sessionId,
              followed.right.pipe(
                Stream.runForEach((item) => send(sessionEventFrame(sessionId, item))),
                Effect.catchAll(internal("session stream")),
                trackedIn(wsSubscriptions)
              )
            )
          })

        const unsubscribe = (sessionId: string) =>
          Effect.zipRight(FiberMap.remove(subscriptions, sessionId), send({ type: "unsubscribed", sessionId }))

        // ---- openers -------------------------------------------------------------------------

        const generationFailed = (requestId: string) => (error: AppError | AiError | DbError | StorageError) =>
          Effect.gen(function* () {
            const wire = isAiError(error) ? yield* Effect.flip(aiErrorToWire(error)) : error
            const code = codeOf(wire)
            if (code === "INTERNAL_ERROR") yield* Effect.logError("WebSocket: opener generation failed", error)
            yield* send({
              type: "opener.error",
              requestId,
              code,
              message: code === "INTERNAL_ERROR" ? "Something went wrong" : wire.message
            })
          })

        const generate = (user: Authenticated, requestId: string, raw: Record<string, unknown>) =>
          Effect.gen(function* () {
            if (yield* FiberMap.has(generations, requestId)) {
              return yield* sendError(SocketErrorCode.DuplicateRequest, "A generation with this requestId is running", {
                requestId
              })
            }
            if ((yield* FiberMap.size(generations)) >= config.maxGenerations) {
              return yield* sendError(
                "RATE_LIMITED",
                `At most ${config.maxGenerations} generations at once on one connection`,
                { requestId }
              )
            }
            const { type: _type, requestId: _requestId, ...body } = raw
            const input = Schema.decodeUnknownEither(GenerateOpeners)(body, {
              errors: "all",
              onExcessProperty: "error"
            })
            if (input._tag === "Left") {
              return yield* sendError("VALIDATION_ERROR", "The request is invalid: see details.issues", {
                requestId,
                details: issuesByPath(ParseResult.ArrayFormatter.formatErrorSync(input.left))
              })
            }
            yield* FiberMap.run(
              generations,
              requestId,
              Effect.flatMap(openers.generate(user.userId, input.right), (events) =>
                Stream.runForEach(events, (event) => send(openerFrame(requestId, event)))
              ).pipe(Effect.catchAll(generationFailed(requestId)))
            )
          })

        const abort = (requestId: string) =>
          Effect.gen(function* () {
            if (!(yield* FiberMap.has(generations, requestId))) {
              return yield* sendError("NOT_FOUND", "No generation with this requestId is running", { requestId })
            }
            // Interrupting the fiber interrupts the AI stream, which aborts the provider's request.
            yield* FiberMap.remove(generations, requestId)
            yield* send({ type: "opener.aborted", requestId })
          })

        // ---- frames --------------------------------------------------------------------------

        /**
         * Message budgets, narrowest first: this connection's, then (once authenticated) the user's,
         * then the address's. A frame refused by one budget is not counted against the next, and
         * frames before `auth` count against the connection only: one client on an address (a NAT,
         * an office) can never spend the budget the others' `auth` needs. One notice a second at
         * most; the frame is dropped.
         */
        const withinLimits = (user: Option.Option<Authenticated>) =>
          Effect.gen(function* () {
            const byConnection = yield* allowHere(limits.wsMessageConnection, connectionKey)
            const refusal = !byConnection.allowed
              ? byConnection
              : Option.isNone(user)
                ? undefined
                : yield* Effect.gen(function* () {
                    const byUser = yield* allow(limits.wsMessageUser, `user:${user.value.clerkId}`)
                    if (!byUser.allowed) return byUser
                    const byIp = yield* allow(limits.wsMessageIp, `ip:${ip}`)
                    return byIp.allowed ? undefined : byIp
                  })
            if (refusal === undefined) return true
            const now = yield* Clock.currentTimeMillis
            if (now - (yield* Ref.get(lastRateLimitNotice)) >= 1_000) {
              yield* Ref.set(lastRateLimitNotice, now)
              yield* sendError("RATE_LIMITED", "Too many messages; slow down", {
                details: { retryAfterMs: refusal.retryAfterMs }
              })
            }
            return false
          })

        const handle = (inbound: Inbound) =>
          Effect.gen(function* () {
            watch.lastSeen = yield* Clock.currentTimeMillis
            const user = yield* Ref.get(auth)
            if (!(yield* withinLimits(user))) return
            if (inbound.isBinary) return yield* sendError(SocketErrorCode.BinaryFrame, "Frames are JSON text")
            if (byteLength(inbound.data) > config.maxFrameBytes) {
              return yield* sendError("PAYLOAD_TOO_LARGE", `Frames are limited to ${config.maxFrameBytes} bytes`)
            }
            const text = textOf(inbound.data)
            const exceeded = jsonLimitExceeded(text)
            if (exceeded !== undefined) return yield* sendError("VALIDATION_ERROR", exceeded)
            const parsed = parseJson(text)
            if (parsed._tag === "Left") return yield* sendError("INVALID_JSON", "The frame is not valid JSON")
            const json = parsed.right
            const typed = Schema.decodeUnknownEither(FrameType)(json)
            if (typed._tag === "Left") {
              return yield* sendError("VALIDATION_ERROR", "A frame is a JSON object with a string `type`")
            }
            const type = typed.right.type
            if (!CLIENT_FRAME_TYPES.some((known) => known === type)) {
              return yield* sendError(SocketErrorCode.UnknownType, `Unknown frame type: ${type.slice(0, 40)}`, {
                details: { known: CLIENT_FRAME_TYPES }
              })
            }
            const decoded = Schema.decodeUnknownEither(ClientFrame)(json, { errors: "all" })
            if (decoded._tag === "Left") {
              return yield* sendError("VALIDATION_ERROR", "The frame is invalid: see details.issues", {
                details: issuesByPath(ParseResult.ArrayFormatter.formatErrorSync(decoded.left))
              })
            }
            const frame = decoded.right
            if (frame.type === "ping")
              return yield* send(frame.t === undefined ? { type: "pong" } : { type: "pong", t: frame.t })
            // A span per frame that does work (not pings): a WebSocket request, as REST requests have.
            const traced = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
              Effect.withSpan(effect, `ws ${frame.type}`, {
                kind: "server",
                attributes: {
                  "ws.frame.type": frame.type,
                  ...("requestId" in frame ? { "ws.request.id": frame.requestId } : {}),
                  ...("sessionId" in frame ? { "session.id": frame.sessionId } : {})
                }
              })
            if (frame.type === "auth") return yield* traced(authenticate(frame.token))
            if (Option.isNone(user)) {
              return yield* sendError("UNAUTHORIZED", "Send `auth` first", {
                ...("requestId" in frame ? { requestId: frame.requestId } : {})
              })
            }
            switch (frame.type) {
              case "subscribe":
                return yield* traced(subscribe(user.value, frame.sessionId, frame.afterSeq))
              case "unsubscribe":
                return yield* traced(unsubscribe(frame.sessionId))
              case "opener.generate":
                return yield* traced(
                  generate(user.value, frame.requestId, typeof json === "object" && json !== null ? { ...json } : {})
                )
              case "abort":
                return yield* traced(abort(frame.requestId))
            }
          })

        const connectedAt = yield* Clock.currentTimeMillis
        const watch: Deadlines = {
          lastSeen: connectedAt,
          authBy: connectedAt + config.authTimeoutMs,
          warnAt: undefined,
          expiresAt: undefined,
          onAuthTimeout: Effect.zipRight(
            sendError("UNAUTHORIZED", "No `auth` received in time"),
            close(CloseCode.Unauthenticated, "Authentication timeout")
          ),
          onExpiring: (expiresAt) => send({ type: "auth.expiring", expiresAt: new Date(expiresAt) }),
          onExpired: Effect.zipRight(
            sendError(SocketErrorCode.TokenExpired, "The token expired; reconnect and authenticate"),
            close(CloseCode.Unauthenticated, "Token expired")
          ),
          onIdle: close(CloseCode.Idle, "Idle: send ping")
        }
        watched.add(watch)
        yield* Effect.addFinalizer(() => Effect.sync(() => watched.delete(watch)))
        yield* Effect.forkScoped(
          Effect.forever(
            Effect.flatMap(Queue.take(inbox), (inbound) =>
              handle(inbound).pipe(Effect.catchAllDefect(internal("frame handling")))
            )
          )
        )
        yield* Deferred.await(closed)
      }).pipe(Effect.scoped, trackedIn(wsConnections))

    return { serve, openConnections: () => open } as const
  }),
  dependencies: []
}) {}
