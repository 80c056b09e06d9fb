/**
 * An account erased while one of its generations is running (`DELETE /users/me` from another
 * device): the generation ends as its start would now be refused, `UNAUTHORIZED` with
 * `details.reason: "account-erased"`, on every transport (WebSocket `opener.error`, then the
 * connection closes 4401; the SSE `failed` event; the RPC stream's `Unauthorized`), never an
 * internal error, and nothing of the database's own words reaches the client. The model's answer
 * is held after its first line (saved), the account is erased, then the second line comes and
 * cannot be saved for a user who is gone. Nothing of the user is left behind.
 *
 * The match's screenshot read before the erasure and its normalised image recorded after the
 * upload's row went: the same refusal, not an internal error.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { afterAll, beforeEach } from "vitest"
import { Erasure } from "../../../src/core/erasure.ts"
import { CloseCode } from "../../../src/domain/realtime.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { captureLogs } from "../../fixtures/queue-contract.ts"
import { awaitLockWaits, sql, TestDb } from "../../support/database.ts"
import { readStreamed } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { rpcRequest, rpcStreamed } from "../../support/rpc-socket.ts"
import {
  ERASED,
  eraseAccount,
  erasedRpcExit,
  erasingElsewhere,
  provisionUser,
  type TestUser
} from "../../support/users.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"
import { connectAs, ofType } from "../../support/ws.ts"
import {
  generateJson,
  generateSse,
  heldAfterTheFirstLine,
  INTERNAL_WORDS,
  newMatch,
  parseFrame,
  type SseEvent
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

/** What the server logs: nothing at ERROR for a race the server expects (a user erased meanwhile). */
const logs = captureLogs()
beforeEach(() => {
  logs.lines.length = 0
})

/**
 * While set, the erasure of `userId` waits in a step of its own (after its tombstone, before the
 * user's row is deleted) from saying `started` until `released`: an erasure that is running.
 */
let erasureHold:
  | { readonly userId: string; readonly started: Deferred.Deferred<void>; readonly released: Deferred.Deferred<void> }
  | undefined
const HeldErasureStep = Erasure.register({
  name: "held",
  erase: (user) =>
    erasureHold?.userId === user.id
      ? Effect.zipRight(Deferred.succeed(erasureHold.started, undefined), Deferred.await(erasureHold.released))
      : Effect.void
})

const Server = testServer({
  db: TestDb(),
  logs: logs.layer,
  routes: HeldErasureStep,
  config: {
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_BREAKER_FAILURES: "1000",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    OPENERS_DAILY_LIMIT: "10000"
  }
})

/** Every row that names the user: none may be written after the erasure. */
const rowsOf = (userId: string) =>
  sql(
    `SELECT 'users' AS t, count(*)::int AS n FROM users WHERE id = $1
     UNION ALL SELECT 'matches', count(*)::int FROM matches WHERE user_id = $1
     UNION ALL SELECT 'magic_openers', count(*)::int FROM magic_openers WHERE user_id = $1
     UNION ALL SELECT 'ai_calls', count(*)::int FROM ai_calls WHERE user_id = $1
     UNION ALL SELECT 'ai_spend_reservations', count(*)::int FROM ai_spend_reservations WHERE user_id = $1
     UNION ALL SELECT 'usage_counters', count(*)::int FROM usage_counters WHERE user_id = $1`,
    [userId]
  )

/**
 * Nothing of the user left, and nothing logged as an error (before: "AI ledger write failed",
 * its entry refused by the user's foreign key, with Prisma's text).
 */
const expectNothingLeftOf = (userId: string) =>
  Effect.gen(function* () {
    const rows = yield* rowsOf(userId)
    expect(rows.filter((row) => row["n"] !== 0)).toEqual([])
    expect(logs.lines.filter((line) => line.startsWith("ERROR"))).toEqual([])
  })

/** What a generation is for: a saved match (whose row goes with the account), or a profile given inline. */
type Subject = "match" | "profile"

const subjectOf = (url: string, user: TestUser, subject: Subject) =>
  subject === "match"
    ? Effect.map(newMatch(url, user.headers, { name: "Sam", bio: "Climber" }), (match) => ({ matchId: match.id }))
    : Effect.succeed({ profile: { name: "Sam", bio: "Climber" } })

/** A match whose profile screenshot is not read yet: its generation reads it with the vision model first. */
const matchWithScreenshot = (url: string, user: TestUser) =>
  Effect.gen(function* () {
    const bytes = yield* Effect.promise(() => tinyImage("png", 390, 844))
    const ticket = yield* ticketFor(url, user.headers, bytes, "image/png", "profile")
    expect((yield* sendBytes(ticket, bytes)).status).toBe(200)
    return yield* newMatch(url, user.headers, { name: "Sam", profileUploadId: ticket.uploadId })
  })

/** The vision model's read of the screenshot, held from its arrival (`asked`) until `released`. */
const heldScreenshotRead = (asked: Deferred.Deferred<void>, released: Deferred.Deferred<void>) =>
  openai.enqueue({
    kind: "ok",
    text: JSON.stringify({ name: "Sam", age: 29, bio: "Climber", prompts: [], interests: [] }),
    arrived: () => Effect.runSync(Deferred.succeed(asked, undefined)),
    until: Effect.runPromise(Deferred.await(released))
  })

layer(Server, { timeout: 60_000 })("openers: an account erased during its generation", (it) => {
  for (const subject of ["match", "profile"] as const) {
    it.scoped(`WebSocket (${subject}): opener.error UNAUTHORIZED account-erased, then the connection closes 4401`, () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const alice = yield* provisionUser(url, "alice")
        const payload = yield* subjectOf(url, alice, subject)
        const released = yield* Deferred.make<void>()
        heldAfterTheFirstLine(openai, released)
        const socket = yield* connectAs(url, alice.token)
        yield* socket.send({ type: "opener.generate", requestId: "g1", count: 2, ...payload })
        yield* socket.next(ofType("opener.saved"))
        yield* eraseAccount(url, alice)
        yield* Deferred.succeed(released, undefined)

        // Before: opener.error INTERNAL_ERROR "Something went wrong" (the save's foreign key of the user).
        const end = yield* socket.next((frame) => frame.type === "opener.error" || frame.type === "opener.done")
        expect(end).toEqual({ type: "opener.error", requestId: "g1", ...ERASED })
        expect(socket.frames.filter((frame) => frame["requestId"] === "g1").map((frame) => frame.type)).toEqual([
          "opener.delta",
          "opener.saved",
          "opener.error"
        ])
        // As any frame of an erased account is refused: no token of it will be accepted again.
        expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
        yield* expectNothingLeftOf(alice.id)
      })
    )
  }

  it.effect("REST SSE: the terminal failed event is UNAUTHORIZED account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const payload = yield* subjectOf(url, alice, "match")
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const events: Array<SseEvent> = []
      const text = yield* readStreamed(
        `${url}/api/v1/magic-openers/generate`,
        {
          method: "POST",
          headers: { ...alice.headers, "content-type": "application/json", accept: "text/event-stream" },
          body: JSON.stringify({ ...payload, count: 2 })
        },
        "\n\n",
        async (frame) => {
          const event = parseFrame(frame)
          if (event === undefined) return
          events.push({ event: event.event, data: event.data })
          if (event.event === "done") {
            await Effect.runPromise(Effect.zipRight(eraseAccount(url, alice), Deferred.succeed(released, undefined)))
          }
        }
      )
      // Before: `failed` INTERNAL_ERROR.
      expect(events.map((event) => event.event)).toEqual(["delta", "done", "failed"])
      expect(events.at(-1)?.data).toEqual({ ...ERASED, openers: [expect.objectContaining({ text: "Hi Sam?" })] })
      expect(text).not.toMatch(INTERNAL_WORDS)
      yield* expectNothingLeftOf(alice.id)
    })
  )

  it.effect("RPC: the stream fails Unauthorized account-erased; nothing of the database reaches the client", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const payload = yield* subjectOf(url, alice, "match")
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const lines = yield* rpcStreamed(
        url,
        rpcRequest("1", "openers.generate", { ...payload, count: 2 }, alice.token),
        async (line) => {
          if (line.includes('"_tag":"done"')) {
            await Effect.runPromise(Effect.zipRight(eraseAccount(url, alice), Deferred.succeed(released, undefined)))
          }
        }
      )
      // Before: `Exit` Failure Die { name: "InternalError", message: "An unexpected error occurred" }.
      expect(lines.at(-1)).toEqual(erasedRpcExit("1"))
      expect(JSON.stringify(lines)).not.toMatch(INTERNAL_WORDS)
      yield* expectNothingLeftOf(alice.id)
    })
  )

  it.effect("REST SSE, while the match's screenshot is read (before the stream): 401 UNAUTHORIZED account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const match = yield* matchWithScreenshot(url, alice)
      const asked = yield* Deferred.make<void>()
      const released = yield* Deferred.make<void>()
      heldScreenshotRead(asked, released)
      const generating = yield* Effect.fork(generateSse(url, alice.headers, { matchId: match.id, count: 1 }))
      yield* Deferred.await(asked)
      yield* eraseAccount(url, alice)
      yield* Deferred.succeed(released, undefined)

      const res = yield* Fiber.join(generating)
      // Before: 404 NOT_FOUND "Match not found" (the match went with the account).
      expect(res.status).toBe(401)
      expect(res.body).toEqual({ success: false, error: ERASED })
      // The opener's model was never asked.
      expect(openai.requests.map((request) => request.stream)).toEqual([false])
      yield* expectNothingLeftOf(alice.id)
    })
  )

  it.scoped(
    "WebSocket, while the match's screenshot is read: opener.error UNAUTHORIZED account-erased, then 4401",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const alice = yield* provisionUser(url, "alice")
        const match = yield* matchWithScreenshot(url, alice)
        const asked = yield* Deferred.make<void>()
        const released = yield* Deferred.make<void>()
        heldScreenshotRead(asked, released)
        const socket = yield* connectAs(url, alice.token)
        yield* socket.send({ type: "opener.generate", requestId: "g1", matchId: match.id, count: 1 })
        yield* Deferred.await(asked)
        yield* eraseAccount(url, alice)
        yield* Deferred.succeed(released, undefined)

        // Before: opener.error NOT_FOUND "Match not found".
        expect(yield* socket.next(ofType("opener.error"))).toEqual({ type: "opener.error", requestId: "g1", ...ERASED })
        expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
        yield* expectNothingLeftOf(alice.id)
      })
  )

  it.scoped(
    "REST, erased on another instance while the screenshot's normalised image is recorded: 401, not a 500",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const alice = yield* provisionUser(url, "alice")
        const match = yield* matchWithScreenshot(url, alice)
        // Another instance's erasure at its uploads' step (the tombstone, then the rows), not yet
        // committed: the generation takes its allowance and reads the match and its upload as they
        // were; its record of the normalised image waits for the erasure, then finds no row.
        const erasure = yield* erasingElsewhere(alice, "uploads")
        const generating = yield* Effect.fork(generateJson(url, alice.headers, { matchId: match.id, count: 1 }))
        yield* awaitLockWaits(1)
        yield* erasure.commit
        const res = yield* Fiber.join(generating)
        // The rest of the erasure (its user's row, which the allowance names), from its tombstone.
        yield* eraseAccount(url, alice)

        // Before: 500 INTERNAL_ERROR (the record's update found no row).
        expect(res.status).toBe(401)
        expect(res.body).toEqual({ success: false, error: ERASED })
        // Neither the vision model nor the opener's was asked.
        expect(openai.requests).toEqual([])
        yield* expectNothingLeftOf(alice.id)
      })
  )

  it.effect("REST, while the erasure runs (its tombstone written, the rows not yet deleted): 401 account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const started = yield* Deferred.make<void>()
      const released = yield* Deferred.make<void>()
      erasureHold = { userId: alice.id, started, released }
      const erasing = yield* Effect.fork(eraseAccount(url, alice))
      yield* Deferred.await(started)
      openai.enqueue({ kind: "ok", text: "Hi Sam?\n", usage: { input: 100, output: 10 } })
      // This instance's cache still maps the token: the request is let in.
      const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      yield* Deferred.succeed(released, undefined)
      yield* Fiber.join(erasing)

      // Before: 200 with the opener, saved for an account whose erasure had started (and deleted with it after).
      expect(res.status).toBe(401)
      expect(res.body).toEqual({ success: false, error: ERASED })
      yield* expectNothingLeftOf(alice.id)
    }).pipe(Effect.ensuring(Effect.sync(() => (erasureHold = undefined))))
  )

  it.effect("REST SSE, a line after the erasure started (its rows not yet deleted): failed account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const started = yield* Deferred.make<void>()
      const ended = yield* Deferred.make<void>()
      erasureHold = { userId: alice.id, started, released: ended }
      const firstSaved = yield* Deferred.make<void>()
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const events: Array<SseEvent> = []
      const reading = yield* Effect.fork(
        readStreamed(
          `${url}/api/v1/magic-openers/generate`,
          {
            method: "POST",
            headers: { ...alice.headers, "content-type": "application/json", accept: "text/event-stream" },
            body: JSON.stringify({ profile: { name: "Sam" }, count: 2 })
          },
          "\n\n",
          async (frame) => {
            const event = parseFrame(frame)
            if (event === undefined) return
            events.push({ event: event.event, data: event.data })
            if (event.event === "done") await Effect.runPromise(Deferred.succeed(firstSaved, undefined))
            if (event.event === "failed" || event.event === "final")
              await Effect.runPromise(Deferred.succeed(ended, undefined))
          }
        )
      )
      // The first opener saved, the erasure starts (tombstone written) and waits until the stream
      // ended; only then does the model's second line come.
      yield* Deferred.await(firstSaved)
      const erasing = yield* Effect.fork(eraseAccount(url, alice))
      yield* Deferred.await(started)
      yield* Deferred.succeed(released, undefined)
      yield* Fiber.join(reading)
      yield* Fiber.join(erasing)

      // Before: the second opener saved and `final` (both openers went with the account right after).
      expect(events.map((event) => event.event)).toEqual(["delta", "done", "failed"])
      expect(events.at(-1)?.data).toEqual({ ...ERASED, openers: [expect.objectContaining({ text: "Hi Sam?" })] })
      yield* expectNothingLeftOf(alice.id)
    }).pipe(Effect.ensuring(Effect.sync(() => (erasureHold = undefined))))
  )
})
