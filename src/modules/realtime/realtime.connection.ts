/**
 * One WebSocket connection, as a scope that lasts as long as the socket (a child of the
 * service's: closing the server closes every connection): frames go through one inbox, handled
 * in order by a fiber that runs only while frames wait; subscriptions and generations are fibers
 * in FiberMaps made on first use, so closing the socket interrupts all of them, provider requests
 * included. The connection's deadlines (auth, token expiry, silence) are checked by one sweeper
 * for all. An idle connection holds no fiber: its state is a few variables and closures
 * (about 20 KiB less per connection than a waiting fiber per socket and per inbox; issue #17).
 */
import {
  Cause,
  Clock,
  Duration,
  Effect,
  ExecutionStrategy,
  Exit,
  Fiber,
  FiberMap,
  Metric,
  Option,
  ParseResult,
  Runtime,
  Schema,
  Scope,
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
import { DbError, isConnectionLost } from "../../core/db/db.ts"
import { Tombstones } from "../../core/erasure.ts"
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
const CLOSED = 3
/** Frames received and not yet handled; more and the client is flooding (closed 1008). */
const INBOX_CAPACITY = 64
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

/** The reason of a refusal for an account whose erasure started (as REST and RPC say it). */
const ACCOUNT_ERASED = "account-erased"

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

type Deadline = "auth" | "expiring" | "expired" | "idle"

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
  /** What a deadline does once passed (built then: nothing held per connection before). */
  readonly passed: (deadline: Deadline, expiresAt: number) => Effect.Effect<void>
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
    const tombstones = yield* Tombstones
    const perUser = new UserConnections()
    const watched = new Set<Deadlines>()
    let open = 0
    // Connections are scopes under the service's, their inboxes drained by fibers of its runtime.
    const serviceScope = yield* Effect.scope
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())

    const sweep = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      for (const watch of watched) {
        if (watch.authBy !== undefined && now >= watch.authBy) {
          watch.authBy = undefined
          yield* watch.passed("auth", now)
        }
        if (watch.warnAt !== undefined && watch.expiresAt !== undefined && now >= watch.warnAt) {
          watch.warnAt = undefined
          yield* watch.passed("expiring", watch.expiresAt)
        }
        if (watch.expiresAt !== undefined && now >= watch.expiresAt) {
          watch.expiresAt = undefined
          yield* watch.passed("expired", now)
        }
        if (now - watch.lastSeen > config.idleTimeoutMs) {
          watch.lastSeen = Number.POSITIVE_INFINITY
          yield* watch.passed("idle", now)
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

    /**
     * Serves one upgraded socket until it closes (returns once it is set up: the socket's events
     * drive it from then on). `ip` is the client's address.
     */
    const serve = (ws: WebSocket, ip: string) =>
      Effect.gen(function* () {
        const inbox: Array<Inbound> = []
        /** Starts handling the inbox; set once the connection is set up (frames wait until then). */
        let startDraining = () => {}
        const scope = yield* Scope.fork(serviceScope, ExecutionStrategy.sequential)
        const connectionKey = `connection:${randomUUID()}`
        // Read and written by the frame-handling fiber (one at a time) and the sweeper only.
        let auth = Option.none<Authenticated>()
        let lastRateLimitNotice = 0
        /** The user this connection counts against (`maxConnectionsPerUser`), once authenticated. */
        let countedFor: string | undefined
        /** Whether a fiber is handling the inbox, and that fiber (to interrupt when the connection ends). */
        let handling = false
        let handler: Fiber.RuntimeFiber<void> | undefined
        // Most connections never subscribe nor generate: their fiber maps are made on first use.
        let subscriptionsMap: FiberMap.FiberMap<string> | undefined
        let generationsMap: FiberMap.FiberMap<string> | undefined
        const fiberMap = (
          made: FiberMap.FiberMap<string> | undefined,
          keep: (map: FiberMap.FiberMap<string>) => void
        ) =>
          made === undefined ? Effect.tap(Scope.extend(FiberMap.make<string>(), scope), keep) : Effect.succeed(made)
        const subscriptions = Effect.suspend(() => fiberMap(subscriptionsMap, (map) => (subscriptionsMap = map)))
        const generations = Effect.suspend(() => fiberMap(generationsMap, (map) => (generationsMap = map)))

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
          if (inbox.length >= INBOX_CAPACITY) return closeSocket(CloseCode.Flooding, "Too many frames in flight")
          inbox.push({ data, isBinary })
          startDraining()
        })

        const end = () => {
          runFork(Scope.close(scope, Exit.void))
        }
        ws.on("close", end)
        // Protocol errors (a frame above the hard cap, bad framing): `ws` closes the socket itself.
        ws.on("error", end)
        // Closed while this was set up: no close event will come.
        if (ws.readyState === CLOSED) end()
        open++
        yield* Metric.modify(wsConnections, 1)
        yield* Scope.addFinalizer(
          scope,
          Effect.zipRight(
            Effect.sync(() => {
              open--
              if (countedFor !== undefined) perUser.remove(countedFor)
              closeSocket(CloseCode.GoingAway, "Server shutting down")
            }),
            Metric.modify(wsConnections, -1)
          )
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

        const internal =
          (what: string, extra: { requestId?: string; details?: unknown } = {}) =>
          (cause: unknown) =>
            Effect.zipRight(
              Effect.logError(`WebSocket: ${what} failed`, cause),
              sendError("SERVICE_UNAVAILABLE", "Temporarily unavailable; try again shortly", extra)
            )

        // ---- authentication ------------------------------------------------------------------

        /**
         * The account was erased (its erasure started): refused as REST and RPC refuse its token,
         * then closed, since no token of it will be accepted again.
         */
        const refuseErased = (extra: { requestId?: string }) =>
          Effect.zipRight(
            sendError("UNAUTHORIZED", "This account was erased", { ...extra, details: { reason: ACCOUNT_ERASED } }),
            close(CloseCode.Unauthenticated, "Account erased")
          )

        /**
         * Runs what a frame does as `user` unless the account was erased since the connection
         * authenticated (the tombstone, read for every such frame: the user id kept here is no proof
         * that the account still exists). A database failure of that read is answered by `failed`, as
         * the frame's own work answers one.
         */
        const asUser = (
          user: Authenticated,
          extra: { requestId?: string },
          failed: (error: DbError) => Effect.Effect<void>,
          act: Effect.Effect<void>
        ) =>
          Effect.gen(function* () {
            const erased = yield* Effect.either(tombstones.isErased(user.userId))
            if (erased._tag === "Left") return yield* failed(erased.left)
            if (erased.right) return yield* refuseErased(extra)
            return yield* act
          })

        const authenticate = (token: string) =>
          Effect.gen(function* () {
            const current = auth
            const refuse = (reason: string, message: string) =>
              reason === ACCOUNT_ERASED
                ? refuseErased({})
                : Effect.zipRight(
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
              countedFor = user.id
              watch.authBy = undefined
            }
            auth = Option.some({ userId: user.id, clerkId: user.clerkId })
            const warnAt = expiresAt - config.expiryWarningMs
            watch.expiresAt = expiresAt
            watch.warnAt = warnAt > (yield* Clock.currentTimeMillis) ? warnAt : undefined
            yield* send({ type: "auth.ok", userId: user.id, expiresAt: new Date(expiresAt) })
          })

        // ---- sessions ------------------------------------------------------------------------

        const subscribe = (user: Authenticated, sessionId: string, afterSeq: number | undefined) =>
          Effect.gen(function* () {
            const following = subscriptionsMap !== undefined && (yield* FiberMap.has(subscriptionsMap, sessionId))
            if (
              !following &&
              subscriptionsMap !== undefined &&
              (yield* FiberMap.size(subscriptionsMap)) >= config.maxSubscriptions
            ) {
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
                : internal("subscribe", { details: { sessionId } })(error)
            }
            yield* send({ type: "subscribed", sessionId })
            yield* FiberMap.run(
              yield* subscriptions,
              sessionId,
              followed.right.pipe(
                Stream.runForEach((item) => send(sessionEventFrame(sessionId, item))),
                Effect.catchAll((error) =>
                  error._tag === "NotFound"
                    ? // Deleted meanwhile: as a subscription to a missing session is answered.
                      sendError("NOT_FOUND", error.message, { details: { sessionId } })
                    : error._tag === "Unauthorized" && reasonOf(error) === ACCOUNT_ERASED
                      ? // Gone with the account erased meanwhile: as any frame of an erased account is refused.
                        refuseErased({})
                      : // The session's id says which one to follow again (a client follows several at once).
                        internal("session stream", { details: { sessionId } })(error)
                ),
                trackedIn(wsSubscriptions)
              )
            )
          })

        const unsubscribe = (sessionId: string) =>
          Effect.zipRight(
            subscriptionsMap === undefined ? Effect.void : FiberMap.remove(subscriptionsMap, sessionId),
            send({ type: "unsubscribed", sessionId })
          )

        // ---- openers -------------------------------------------------------------------------

        const generationFailed = (requestId: string) => (error: AppError | AiError | DbError | StorageError) =>
          Effect.gen(function* () {
            // A lost database connection is an outage, as REST answers it (503), not a defect.
            if (error._tag === "DbError" && isConnectionLost(error)) {
              yield* Effect.logWarning("WebSocket: database unavailable during an opener generation", error)
              return yield* send({
                type: "opener.error",
                requestId,
                code: "SERVICE_UNAVAILABLE",
                message: "The database is unavailable; try again shortly"
              })
            }
            // The account was erased during the generation (another device): it ends as its start
            // would now be refused, and the connection closes as for any frame of an erased account.
            if (error._tag === "Unauthorized" && reasonOf(error) === ACCOUNT_ERASED) {
              yield* send({
                type: "opener.error",
                requestId,
                code: "UNAUTHORIZED",
                message: error.message,
                details: { reason: ACCOUNT_ERASED }
              })
              return yield* close(CloseCode.Unauthenticated, "Account erased")
            }
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
            const running = generationsMap
            if (running !== undefined && (yield* FiberMap.has(running, requestId))) {
              return yield* sendError(SocketErrorCode.DuplicateRequest, "A generation with this requestId is running", {
                requestId
              })
            }
            if (running !== undefined && (yield* FiberMap.size(running)) >= config.maxGenerations) {
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
              yield* generations,
              requestId,
              Effect.flatMap(openers.generate(user.userId, input.right), (events) =>
                Stream.runForEach(events, (event) => send(openerFrame(requestId, event)))
              ).pipe(
                Effect.catchAll(generationFailed(requestId)),
                // A defect too ends the request with its frame (without one the app waits): an opener's
                // save that lost the database dies (the SSE route answers it `failed` the same way).
                Effect.catchAllDefect((defect) =>
                  defect instanceof DbError
                    ? generationFailed(requestId)(defect)
                    : Effect.zipRight(
                        Effect.logError("WebSocket: opener generation died", Cause.die(defect)),
                        send({
                          type: "opener.error",
                          requestId,
                          code: "INTERNAL_ERROR",
                          message: "Something went wrong"
                        })
                      )
                )
              )
            )
          })

        const abort = (requestId: string) =>
          Effect.gen(function* () {
            const running = generationsMap
            if (running === undefined || !(yield* FiberMap.has(running, requestId))) {
              return yield* sendError("NOT_FOUND", "No generation with this requestId is running", { requestId })
            }
            // Interrupting the fiber interrupts the AI stream, which aborts the provider's request.
            yield* FiberMap.remove(running, requestId)
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
            if (now - lastRateLimitNotice >= 1_000) {
              lastRateLimitNotice = now
              yield* sendError("RATE_LIMITED", "Too many messages; slow down", {
                details: { retryAfterMs: refusal.retryAfterMs }
              })
            }
            return false
          })

        const handle = (inbound: Inbound) =>
          Effect.gen(function* () {
            watch.lastSeen = yield* Clock.currentTimeMillis
            const user = auth
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
                return yield* traced(
                  asUser(
                    user.value,
                    {},
                    internal("subscribe", { details: { sessionId: frame.sessionId } }),
                    subscribe(user.value, frame.sessionId, frame.afterSeq)
                  )
                )
              case "unsubscribe":
                return yield* traced(unsubscribe(frame.sessionId))
              case "opener.generate":
                return yield* traced(
                  asUser(
                    user.value,
                    { requestId: frame.requestId },
                    generationFailed(frame.requestId),
                    generate(user.value, frame.requestId, typeof json === "object" && json !== null ? { ...json } : {})
                  )
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
          passed: (deadline, expiresAt) => {
            switch (deadline) {
              case "auth":
                return Effect.zipRight(
                  sendError("UNAUTHORIZED", "No `auth` received in time"),
                  close(CloseCode.Unauthenticated, "Authentication timeout")
                )
              case "expiring":
                return send({ type: "auth.expiring", expiresAt: new Date(expiresAt) })
              case "expired":
                return Effect.zipRight(
                  sendError(SocketErrorCode.TokenExpired, "The token expired; reconnect and authenticate"),
                  close(CloseCode.Unauthenticated, "Token expired")
                )
              case "idle":
                return close(CloseCode.Idle, "Idle: send ping")
            }
          }
        }
        watched.add(watch)
        yield* Scope.addFinalizer(
          scope,
          Effect.sync(() => watched.delete(watch))
        )

        /** Handles the waiting frames in order, then ends: the next frame starts another fiber. */
        const drain: Effect.Effect<void> = Effect.suspend(() => {
          const inbound = inbox.shift()
          if (inbound === undefined) {
            handling = false
            handler = undefined
            return Effect.void
          }
          return Effect.zipRight(handle(inbound).pipe(Effect.catchAllDefect(internal("frame handling"))), drain)
        })
        startDraining = () => {
          if (handling) return
          handling = true
          const fiber = runFork(drain)
          // Unless it is done already (a fiber may run to its end before runFork returns).
          if (handling) handler = fiber
        }
        yield* Scope.addFinalizer(
          scope,
          Effect.suspend(() => (handler === undefined ? Effect.void : Fiber.interrupt(handler)))
        )
        if (inbox.length > 0) startDraining()
      })

    return { serve, openConnections: () => open } as const
  }),
  dependencies: [Tombstones.Default]
}) {}
