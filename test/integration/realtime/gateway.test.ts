/**
 * The WebSocket gateway's protocol with real `ws` clients against a real server: authentication
 * after the upgrade (timeout, bad token, frames before auth, expiry and re-authentication),
 * JSON heartbeats and idle closing, malformed, unknown, binary and oversized frames, limits
 * (message flood, connections per user), openers streamed and aborted (the provider's request
 * included), and a slow consumer.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { afterAll, beforeEach, vi } from "vitest"
import WebSocket from "ws"
import { CloseCode, ServerFrame } from "../../../src/domain/realtime.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { newClerkId, otherKeys, tokenFor } from "../../support/auth.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { connect, connectAs, ofType } from "../../support/ws.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

const USAGE = { input: 1_000, output: 100 }

const protocolServer = testServer({
  db: TestDb(),
  config: {
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_BREAKER_FAILURES: "1000",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    OPENERS_DAILY_LIMIT: "10000",
    WS_MAX_FRAME_BYTES: "1024",
    WS_MAX_CONNECTIONS_PER_USER: "2",
    WS_EXPIRY_WARNING_MS: "1500",
    RATE_LIMIT_ENABLED: "true",
    RATE_LIMIT_WS_MESSAGE_USER: "20/60s",
    RATE_LIMIT_WS_MESSAGE_IP: "100000/60s",
    RATE_LIMIT_WS_CONNECT_IP: "100000/60s",
    RATE_LIMIT_WS_CONNECT_USER: "100000/60s",
    RATE_LIMIT_REST_IP: "100000/60s",
    RATE_LIMIT_REST_USER: "100000/60s"
  }
})

layer(protocolServer, { timeout: 60_000 })("realtime gateway: protocol", (it) => {
  it.scoped("only auth and ping before authentication; then auth.ok with the internal user id", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const socket = yield* connect(url)

      yield* socket.send({ type: "ping", t: 42 })
      expect(yield* socket.next()).toEqual({ type: "pong", t: 42 })
      yield* socket.send({ type: "subscribe", sessionId: "abc" })
      expect(yield* socket.next()).toEqual({ type: "error", code: "UNAUTHORIZED", message: "Send `auth` first" })
      yield* socket.send({ type: "abort", requestId: "r1" })
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "UNAUTHORIZED", requestId: "r1" })

      yield* socket.send({ type: "auth", token: alice.token })
      const ok = yield* socket.next()
      expect(ok).toMatchObject({ type: "auth.ok", userId: alice.id })
      expect(Date.parse(String(ok["expiresAt"]))).toBeGreaterThan(Date.now())
      // Still open and answering.
      yield* socket.send({ type: "ping" })
      expect(yield* socket.next()).toEqual({ type: "pong" })
    })
  )

  it.scoped("a bad token: UNAUTHORIZED with the reason, then closed 4401", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const socket = yield* connect(url)
      yield* socket.send({ type: "auth", token: tokenFor({ clerkId: newClerkId("mallory"), keys: otherKeys }) })
      expect(yield* socket.next()).toMatchObject({
        type: "error",
        code: "UNAUTHORIZED",
        details: { reason: expect.any(String) }
      })
      expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
    })
  )

  it.scoped("an expiring token gets auth.expiring; a fresh token keeps the connection, an expired one closes it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      // Expires in 3 s (the server warns 1.5 s before).
      const short = () => tokenFor({ clerkId: alice.clerkId, expiresIn: 3 })

      const renewed = yield* connectAs(url, short())
      const lapsed = yield* connectAs(url, short())
      expect((yield* renewed.next(ofType("auth.expiring"))).expiresAt).toEqual(expect.any(String))
      yield* renewed.send({ type: "auth", token: alice.token })
      expect(yield* renewed.next()).toMatchObject({ type: "auth.ok", userId: alice.id })

      expect(yield* lapsed.next(ofType("auth.expiring"))).toMatchObject({ type: "auth.expiring" })
      expect(yield* lapsed.next(ofType("error"))).toMatchObject({ code: "TOKEN_EXPIRED" })
      expect((yield* lapsed.closed()).code).toBe(CloseCode.Unauthenticated)

      // The renewed one outlived the first token.
      yield* renewed.send({ type: "ping", t: "after" })
      expect(yield* renewed.next(ofType("pong"))).toEqual({ type: "pong", t: "after" })
      expect(renewed.ws.readyState).toBe(renewed.ws.OPEN)
    })
  )

  it.scoped("re-authenticating as another user is refused; the connection stays with its user", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "auth", token: bob.token })
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "FORBIDDEN" })
      yield* socket.send({ type: "ping" })
      expect(yield* socket.next()).toEqual({ type: "pong" })
    })
  )

  it.scoped("malformed, unknown, invalid, binary and oversized frames get error frames; the connection survives", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const socket = yield* connectAs(url, alice.token)

      yield* socket.sendRaw("{not json")
      expect(yield* socket.next()).toEqual({
        type: "error",
        code: "INVALID_JSON",
        message: "The frame is not valid JSON"
      })
      yield* socket.sendRaw("[1,2]")
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "VALIDATION_ERROR" })
      yield* socket.send({ type: "launch.missiles" })
      expect(yield* socket.next()).toMatchObject({
        type: "error",
        code: "UNKNOWN_MESSAGE_TYPE",
        details: { known: expect.arrayContaining(["auth", "subscribe"]) }
      })
      yield* socket.send({ type: "subscribe", sessionId: 7, afterSeq: -1, extra: true })
      const invalid = yield* socket.next()
      expect(invalid).toMatchObject({ type: "error", code: "VALIDATION_ERROR" })
      const paths = (invalid["details"] as { issues: Array<{ path: string }> }).issues.map((issue) => issue.path)
      expect(paths).toEqual(expect.arrayContaining(["sessionId", "afterSeq"]))
      yield* socket.sendRaw(Buffer.from([1, 2, 3]), { binary: true })
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "BINARY_NOT_SUPPORTED" })
      yield* socket.send({ type: "ping", t: "x".repeat(2_000) })
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "PAYLOAD_TOO_LARGE" })
      yield* socket.send({ type: "opener.generate", requestId: "bad", count: 9 })
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "VALIDATION_ERROR", requestId: "bad" })

      yield* socket.send({ type: "ping", t: 1 })
      expect(yield* socket.next()).toEqual({ type: "pong", t: 1 })
    })
  )

  it.scoped("a ping whose t is no finite number (1e400 parses to Infinity) is VALIDATION_ERROR, not a pong", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const socket = yield* connectAs(url, alice.token)
      for (const t of ["1e400", "-1e400"]) {
        yield* socket.sendRaw(`{"type":"ping","t":${t}}`)
        // Before: { type: "pong", t: null }, a frame the server's own ServerFrame refuses.
        const refused = yield* socket.next()
        expect(refused).toMatchObject({ type: "error", code: "VALIDATION_ERROR" })
        const paths = (refused["details"] as { issues: Array<{ path: string }> }).issues.map((issue) => issue.path)
        expect(paths).toEqual(["t"])
      }
      yield* socket.sendRaw('{"type":"ping","t":1e300}')
      const pong = yield* socket.next()
      expect(pong).toEqual({ type: "pong", t: 1e300 })
      expect(Schema.decodeUnknownSync(ServerFrame)(pong)).toEqual(pong)
    })
  )

  it.scoped("a frame far above the limit ends the connection (1009)", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const socket = yield* connect(url)
      yield* socket.sendRaw("x".repeat(64 * 1024))
      expect((yield* socket.closed()).code).toBe(CloseCode.TooBig)
    })
  )

  it.scoped("a message flood is rate limited for that user only", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const flooder = yield* connectAs(url, alice.token)
      const neighbour = yield* connectAs(url, bob.token)
      for (let i = 0; i < 40; i++) yield* flooder.send({ type: "ping", t: i })
      const limited = yield* flooder.next(ofType("error"))
      expect(limited).toMatchObject({
        code: "RATE_LIMITED",
        details: { retryAfterMs: expect.any(Number) }
      })
      // The user's budget (20 per minute, auth included) was spent: fewer pongs than pings.
      const pongs = flooder.frames.filter((frame) => frame.type === "pong").length
      expect(pongs).toBeLessThan(40)
      expect(pongs).toBeGreaterThan(0)

      yield* neighbour.send({ type: "ping", t: "bob" })
      expect(yield* neighbour.next()).toEqual({ type: "pong", t: "bob" })
    })
  )

  it.scoped("connections per user are capped: the third gets RATE_LIMITED and 4429", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      yield* connectAs(url, alice.token)
      yield* connectAs(url, alice.token)
      const third = yield* connect(url)
      yield* third.send({ type: "auth", token: alice.token })
      expect(yield* third.next()).toMatchObject({ type: "error", code: "RATE_LIMITED" })
      expect((yield* third.closed()).code).toBe(CloseCode.TooManyConnections)
    })
  )

  it.scoped("opener.generate streams deltas, saved openers and done", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue({ kind: "ok", text: "Hi Sam?\nTacos or sushi?\n", usage: USAGE })
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({
        type: "opener.generate",
        requestId: "g1",
        profile: { name: "Sam", bio: "Loves tacos" },
        count: 2
      })
      const done = yield* socket.next(ofType("opener.done"))
      expect(done).toMatchObject({ requestId: "g1", meta: { provider: "gpt-4o", local: false } })
      const frames = socket.frames.filter((frame) => frame["requestId"] === "g1")
      const saved = frames.filter((frame) => frame.type === "opener.saved")
      expect(saved.map((frame) => (frame["opener"] as { text: string }).text)).toEqual(["Hi Sam?", "Tacos or sushi?"])
      expect(frames.findIndex((frame) => frame.type === "opener.delta")).toBeLessThan(
        frames.findIndex((frame) => frame.type === "opener.saved")
      )
      expect(frames.at(-1)?.type).toBe("opener.done")
    })
  )

  it.scoped("abort stops an in-flight generation and its provider request", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue({ kind: "ok", text: "One?\nTwo?\n", chunks: ["One?\n", "Two?\n"], chunkDelayMs: 5_000 })
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "opener.generate", requestId: "g2", profile: { name: "Sam" }, count: 2 })
      yield* socket.next(ofType("opener.saved"))
      yield* socket.send({ type: "abort", requestId: "g2" })
      expect(yield* socket.next(ofType("opener.aborted"))).toEqual({ type: "opener.aborted", requestId: "g2" })
      const aborted = yield* Effect.promise(() => openai.nextClientAbort())
      expect(aborted.stream).toBe(true)
      // Nothing more for g2; an unknown request id is an error.
      yield* socket.send({ type: "abort", requestId: "g2" })
      expect(yield* socket.next(ofType("error"))).toMatchObject({ code: "NOT_FOUND", requestId: "g2" })
      expect(socket.frames.some((frame) => frame.type === "opener.done")).toBe(false)
    })
  )

  it.scoped(
    "a connection of an account erased meanwhile: what acts as the user is refused UNAUTHORIZED account-erased, then closed 4401",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const generating = yield* connectAs(url, alice.token)
        const subscribing = yield* connectAs(url, alice.token)
        const renewing = yield* connectAs(url, bob.token)
        for (const user of [alice, bob]) {
          const erased = yield* Effect.promise(() =>
            fetch(`${url}/api/v1/users/me`, { method: "DELETE", headers: user.headers })
          )
          expect(erased.status).toBe(204)
        }
        const refusal = { type: "error", code: "UNAUTHORIZED", message: "This account was erased" }

        // Before: the cached user id was used as is, and the quota's write failed: INTERNAL_ERROR.
        yield* generating.send({ type: "opener.generate", requestId: "g1", profile: { name: "Sam" }, count: 1 })
        expect(yield* generating.next()).toEqual({ ...refusal, requestId: "g1", details: { reason: "account-erased" } })
        expect((yield* generating.closed()).code).toBe(CloseCode.Unauthenticated)
        expect(openai.requests).toEqual([])

        yield* subscribing.send({ type: "subscribe", sessionId: "abc" })
        expect(yield* subscribing.next()).toEqual({ ...refusal, details: { reason: "account-erased" } })
        expect((yield* subscribing.closed()).code).toBe(CloseCode.Unauthenticated)

        // A still-valid token of the account renews nothing: refused, and closed (no later token can be accepted).
        yield* renewing.send({ type: "auth", token: bob.token })
        expect(yield* renewing.next()).toEqual({ ...refusal, details: { reason: "account-erased" } })
        expect((yield* renewing.closed()).code).toBe(CloseCode.Unauthenticated)

        expect(yield* sql("SELECT count(*)::int AS n FROM usage_counters WHERE user_id = $1", [alice.id])).toEqual([
          { n: 0 }
        ])
      })
  )

  it.scoped("generation failures come as opener.error with the API's code", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue({ kind: "status", status: 500 })
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "opener.generate", requestId: "g3", profile: { name: "Sam" } })
      expect(yield* socket.next(ofType("opener.error"))).toMatchObject({ requestId: "g3", code: "AI_UNAVAILABLE" })
      yield* socket.send({ type: "opener.generate", requestId: "g4", matchId: "nosuchmatch0000000000000" })
      expect(yield* socket.next(ofType("opener.error"))).toMatchObject({ requestId: "g4", code: "NOT_FOUND" })
    })
  )
})

layer(
  testServer({
    db: TestDb(),
    config: {
      // Deadlines this layer's tests wait out, with room for a loaded machine: an auth answered in
      // time (a database read) or a ping every 150 ms must never miss them.
      WS_AUTH_TIMEOUT_MS: "2000",
      WS_IDLE_TIMEOUT_MS: "2000",
      WS_MAX_FRAME_BYTES: "200000",
      RATE_LIMIT_ENABLED: "false"
    }
  }),
  { timeout: 30_000 }
)("realtime gateway: timeouts", (it) => {
  it.scoped("no auth in time: closed 4401", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const socket = yield* connect(url)
      expect(yield* socket.next()).toMatchObject({ type: "error", code: "UNAUTHORIZED" })
      expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
    })
  )

  it.scoped("a silent connection is closed 4408; one that pings stays open", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const silent = yield* connectAs(url, alice.token)
      const alive = yield* connectAs(url, alice.token)
      const pinger = setInterval(() => alive.ws.send(JSON.stringify({ type: "ping" })), 150)
      yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(pinger)))
      expect((yield* silent.closed()).code).toBe(CloseCode.Idle)
      // A second idle period, measured by the server itself: one more silent connection, opened now,
      // is closed too. The pinging one, connected before both, is still served.
      const later = yield* connectAs(url, alice.token)
      expect((yield* later.closed()).code).toBe(CloseCode.Idle)
      yield* alive.send({ type: "ping", t: "still" })
      expect(yield* alive.next((frame) => frame["t"] === "still")).toEqual({ type: "pong", t: "still" })
    })
  )
})

// Its own server: no idle deadline (the default minute) can close the paused client first; a 3 MiB
// buffer, so that at least twenty pongs stand before the close frame.
layer(
  testServer({
    db: TestDb(),
    config: { WS_MAX_FRAME_BYTES: "200000", WS_MAX_BUFFERED_BYTES: String(3 * 1_048_576), RATE_LIMIT_ENABLED: "false" }
  }),
  { timeout: 60_000 }
)("realtime gateway: slow consumers", (it) => {
  it.scoped("a client that stops reading is closed 1013, and reads that code when it catches up slowly", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      // The server decides where this test runs (same process, same `ws`): its close(1013) is the
      // event to resume reading on. Resumed after a guessed delay instead, a loaded server had not
      // filled the buffer yet, the client drained it and the idle close came instead.
      const closes = vi.spyOn(WebSocket.prototype, "close")
      yield* Effect.addFinalizer(() => Effect.sync(() => closes.mockRestore()))
      const socket = yield* connectAs(url, alice.token)
      // The server's calls (the client echoes a close frame it receives through close() as well).
      const slowConsumerCloses = () =>
        closes.mock.calls.filter(
          ([code], i) => code === CloseCode.SlowConsumer && closes.mock.contexts[i] !== socket.ws
        ).length
      socket.ws.pause()
      // 60 pongs of 150 kB: far more than the 3 MiB buffer plus what the kernel holds.
      const big = "y".repeat(150_000)
      for (let i = 0; i < 60; i++) socket.ws.send(JSON.stringify({ type: "ping", t: big }))
      yield* eventually(Effect.sync(slowConsumerCloses), (count) => count > 0, "the server to close the slow consumer")
      // The client catches up slowly, 60 ms after every pong: the twenty and more pongs standing before
      // the close frame (about fifty here) take over a second. The server once cut such a client
      // after one second: it saw 1006 and never learnt why.
      let caughtUp = 0
      socket.ws.on("message", () => {
        caughtUp++
        socket.ws.pause()
        setTimeout(() => socket.ws.resume(), 60)
      })
      socket.ws.resume()
      expect((yield* socket.closed()).code).toBe(CloseCode.SlowConsumer)
      expect(caughtUp).toBeGreaterThanOrEqual(20)
      const serverCodes = closes.mock.calls
        .filter((_, i) => closes.mock.contexts[i] !== socket.ws)
        .map(([code]) => code)
      expect(new Set(serverCodes)).toEqual(new Set([CloseCode.SlowConsumer]))
    })
  )
})
