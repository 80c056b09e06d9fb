/**
 * Following sessions over the WebSocket gateway, on the real PostgreSQL and Redis (BullMQ queue,
 * Redis progress bus) with the worker in the same process and a wire fake for the models:
 * snapshot then events in seq order through `completed`; resuming with `afterSeq` gives exactly
 * the missed events; another user's session is refused like a missing one; unsubscribe stops.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { CloseCode } from "../../../src/domain/realtime.ts"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { sql, TestDb, testDatabaseUrl } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { connectAs, followToEnd, type Frame, ofType } from "../../support/ws.ts"
import { FAKE_SUGGESTIONS, FAKE_VISION, newSession } from "../sessions/support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

let screenshot: Buffer
beforeAll(async () => {
  screenshot = await chatScreenshotPng()
})

const isOcr = (frame: Frame) => {
  const data = frame["data"]
  return typeof data === "object" && data !== null && "phase" in data && data.phase === "ocr"
}

/** Alice's new session on the fakes' answers, subscribed on a new socket of hers. */
const aliceFollows = Effect.gen(function* () {
  const url = yield* baseUrl
  const { alice } = yield* twoUsers(url)
  openai.setFallback(FAKE_SUGGESTIONS)
  openai.enqueue(FAKE_VISION)
  const socket = yield* connectAs(url, alice.token)
  const session = yield* newSession(url, alice.headers, screenshot)
  yield* socket.send({ type: "subscribe", sessionId: session.id })
  return { url, alice, socket, session }
})

/** Alice's session that stays running (every model call stalls), followed on a new socket up to its OCR. */
const aliceFollowsARunningSession = Effect.gen(function* () {
  const url = yield* baseUrl
  const { alice } = yield* twoUsers(url)
  openai.setFallback({ kind: "hang" })
  const session = yield* newSession(url, alice.headers, screenshot)
  const socket = yield* connectAs(url, alice.token)
  yield* socket.send({ type: "subscribe", sessionId: session.id, afterSeq: 0 })
  yield* socket.next((frame) => frame.type === "session.event" && frame["sessionId"] === session.id && isOcr(frame))
  return { url, alice, socket, session }
})

const notFoundFrame = (sessionId: string) => ({
  type: "error",
  code: "NOT_FOUND",
  message: "Session not found",
  details: { sessionId }
})

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    config: {
      REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
      QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`,
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      RATE_LIMIT_ENABLED: "false"
    }
  }),
  { timeout: 120_000 }
)("realtime gateway: following sessions", (it) => {
  it.scoped("subscribe: snapshot, then every event in seq order through completed; resume gives exactly the rest", () =>
    Effect.gen(function* () {
      const { url, alice, socket, session } = yield* aliceFollows
      expect(yield* socket.next(ofType("subscribed"))).toEqual({ type: "subscribed", sessionId: session.id })
      const events = yield* followToEnd(socket, session.id)
      const kinds = events.map((event) => event["event"])
      expect(kinds[0]).toBe("snapshot")
      expect(kinds.at(-1)).toBe("completed")
      expect(kinds).toContain("transcript")
      expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)
      // After the snapshot, seqs follow one another: no gap, no duplicate.
      const seqs = events.slice(1).map((event) => Number(event["seq"]))
      for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] ?? 0) + 1)
      const transcript = events.find((event) => event["event"] === "transcript")
      expect(transcript?.["data"]).toMatchObject({
        messages: [
          { position: 0, sender: "them", text: "Are you free on Saturday?" },
          { position: 1, sender: "me" }
        ]
      })

      // A client that saw up to the transcript reconnects: exactly the events after it, once.
      const seen = Number(transcript?.["seq"])
      const again = yield* connectAs(url, alice.token)
      yield* again.send({ type: "subscribe", sessionId: session.id, afterSeq: seen })
      yield* again.next(ofType("subscribed"))
      const missed = yield* followToEnd(again, session.id)
      expect(missed.map((event) => event["seq"])).toEqual(
        events.filter((event) => Number(event["seq"]) > seen && event["event"] !== "snapshot").map((e) => e["seq"])
      )
      expect(missed.map((event) => event["event"])).toEqual(
        events.filter((event) => Number(event["seq"]) > seen && event["event"] !== "snapshot").map((e) => e["event"])
      )
    })
  )

  it.scoped(
    "the first screenshot's lines arrive while the model is still writing its answer; the transcript replaces them",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.setFallback(FAKE_SUGGESTIONS)
        // The vision answer stops after its first line's closing quote until the test has seen that line.
        const answer = FAKE_VISION.text
        const firstEnd = answer.indexOf('",') + 1
        let release = () => {}
        const released = new Promise<void>((resolve) => {
          release = resolve
        })
        openai.enqueue({
          ...FAKE_VISION,
          chunks: [answer.slice(0, 20), answer.slice(20, firstEnd), answer.slice(firstEnd)],
          holdAfter: { deltas: 2, until: released }
        })
        const socket = yield* connectAs(url, alice.token)
        const session = yield* newSession(url, alice.headers, screenshot)
        yield* socket.send({ type: "subscribe", sessionId: session.id })
        const isEvent = (name: string) => (frame: Frame) =>
          frame.type === "session.event" && frame["sessionId"] === session.id && frame["event"] === name
        const first = yield* socket.next(isEvent("lines"))
        expect(first["data"]).toEqual({
          messages: [{ position: 0, sender: "them", text: "Are you free on Saturday?", time: null }]
        })
        // Half the answer is still at the provider: no transcript yet.
        expect(socket.frames.some(isEvent("transcript"))).toBe(false)
        release()
        const rest = yield* followToEnd(socket, session.id)
        const kinds = rest.map((event) => event["event"])
        expect(kinds.indexOf("lines")).toBeLessThan(kinds.indexOf("transcript"))
        const lines = [first, ...rest.filter(isEvent("lines"))].flatMap(
          (frame) => (frame["data"] as { messages: ReadonlyArray<unknown> }).messages
        )
        const transcript = rest.find(isEvent("transcript"))?.["data"] as {
          messages: ReadonlyArray<{ position: number; sender: string; text: string; time: string | null }>
        }
        // Every line shown is the transcript's message at the same position.
        expect(lines).toEqual(
          transcript.messages.map(({ position, sender, text, time }) => ({ position, sender, text, time }))
        )
        expect(kinds.at(-1)).toBe("completed")
      })
  )

  // The suggestions are asked for as soon as the transcript is read: the provider's first token hides
  // the transcript's save and publish. What they write waits for the transcript event.
  it.scoped(
    "the suggestions are asked for while the transcript is being saved; nothing of theirs is shown or saved before it",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.setFallback(FAKE_SUGGESTIONS)
        openai.enqueue(FAKE_VISION)
        // The transcript's save waits for this lock (an INSERT needs ROW EXCLUSIVE, which SHARE blocks).
        const holder = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new pg.Client({ connectionString: testDatabaseUrl() })
            await client.connect()
            await client.query("BEGIN")
            await client.query("LOCK TABLE transcript_messages IN SHARE MODE")
            return client
          }),
          (client) => Effect.promise(() => client.query("ROLLBACK").then(() => client.end()))
        )
        const socket = yield* connectAs(url, alice.token)
        const session = yield* newSession(url, alice.headers, screenshot)
        yield* socket.send({ type: "subscribe", sessionId: session.id })
        const suggestionsAsked = () => openai.requests.filter((request) => !request.image).length
        yield* eventually(Effect.sync(suggestionsAsked), (asked) => asked === 1, "the suggestions request")
        yield* eventually(
          sql<{ waiting: boolean }>(
            "SELECT count(*) > 0 AS waiting FROM pg_locks WHERE relation = 'transcript_messages'::regclass AND NOT granted"
          ),
          (rows) => rows[0]?.waiting === true,
          "the transcript's save waiting for the lock"
        )
        // The provider has been asked (and has answered in full): still no transcript, no suggestion.
        const shown = socket.frames.filter(
          (frame) => frame.type === "session.event" && frame["sessionId"] === session.id
        )
        expect(shown.map((frame) => frame["event"])).not.toContain("transcript")
        expect(shown.map((frame) => frame["event"])).not.toContain("delta")
        expect(shown.map((frame) => frame["event"])).not.toContain("suggestion")
        expect(yield* sql("SELECT id FROM suggestions WHERE session_id = $1", [session.id])).toEqual([])
        yield* Effect.promise(() => holder.query("COMMIT"))
        const kinds = (yield* followToEnd(socket, session.id)).map((event) => event["event"])
        expect(kinds.indexOf("transcript")).toBeGreaterThan(-1)
        expect(kinds.indexOf("transcript")).toBeLessThan(kinds.indexOf("delta"))
        expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)
        expect(kinds.at(-1)).toBe("completed")
        expect(suggestionsAsked()).toBe(1)
        const rows = yield* sql<{ position: number }>(
          "SELECT position FROM suggestions WHERE session_id = $1 ORDER BY position",
          [session.id]
        )
        expect(rows.map((row) => row.position)).toEqual([0, 1, 2])
      })
  )

  // A subscription always ends with its session's end. A client resuming at the last seq (it had
  // the end, or its seq is from the numbering before Redis restarted empty and the new one ended at
  // the same number) got `subscribed` and then nothing, for ever: the soak's follower waited 120 s.
  it.scoped("resuming at the last seq of a finished session: the final snapshot and the end, not silence", () =>
    Effect.gen(function* () {
      const { url, alice, socket, session } = yield* aliceFollows
      const events = yield* followToEnd(socket, session.id)
      const end = events.at(-1)
      expect(end?.["event"]).toBe("completed")

      const again = yield* connectAs(url, alice.token)
      yield* again.send({ type: "subscribe", sessionId: session.id, afterSeq: Number(end?.["seq"]) })
      yield* again.next(ofType("subscribed"))
      const resumed = yield* followToEnd(again, session.id)
      expect(resumed.map((event) => [event["event"], event["seq"]])).toEqual([
        ["snapshot", end?.["seq"]],
        ["completed", end?.["seq"]]
      ])
      expect(resumed[0]?.["data"]).toMatchObject({ status: "completed" })
      expect(resumed[1]?.["data"]).toEqual(end?.["data"])
    })
  )

  it.scoped("another user's session is refused exactly like a missing one", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      openai.setFallback(FAKE_SUGGESTIONS)
      openai.enqueue(FAKE_VISION)
      const session = yield* newSession(url, alice.headers, screenshot)
      const socket = yield* connectAs(url, bob.token)

      yield* socket.send({ type: "subscribe", sessionId: session.id })
      const refused = yield* socket.next()
      yield* socket.send({ type: "subscribe", sessionId: "nosuchsession000000000000" })
      const missing = yield* socket.next()
      expect(refused).toEqual({
        type: "error",
        code: "NOT_FOUND",
        message: missing["message"],
        details: { sessionId: session.id }
      })
      expect(missing).toMatchObject({ type: "error", code: "NOT_FOUND" })
      expect(socket.frames.some((frame) => frame.type === "session.event")).toBe(false)
    })
  )

  it.scoped("a followed session deleted meanwhile (another device): its subscription ends with NOT_FOUND", () =>
    Effect.gen(function* () {
      const { url, alice, socket, session } = yield* aliceFollowsARunningSession
      const deleted = yield* Effect.promise(() =>
        fetch(`${url}/api/v1/sessions/${session.id}`, { method: "DELETE", headers: alice.headers })
      )
      expect(deleted.status).toBe(204)
      // Before: the subscription ended without a word, and the app waited for a terminal event.
      expect(yield* socket.next(ofType("error"))).toEqual(notFoundFrame(session.id))
    })
  )

  it.scoped(
    "a followed session of an account erased meanwhile: refused UNAUTHORIZED account-erased, as any frame of the account, then closed 4401",
    () =>
      Effect.gen(function* () {
        const { url, alice, socket, session } = yield* aliceFollowsARunningSession
        const erased = yield* Effect.promise(() =>
          fetch(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
        )
        expect(erased.status).toBe(204)
        // Before: NOT_FOUND, as for a session deleted by itself, and the connection stayed open
        // (earlier still, the progress was cleared while the rows existed and it ended quietly).
        expect(yield* socket.next(ofType("error"))).toEqual({
          type: "error",
          code: "UNAUTHORIZED",
          message: "This account was erased",
          details: { reason: "account-erased" }
        })
        expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
        expect(yield* sql("SELECT count(*)::int AS n FROM sessions WHERE id = $1", [session.id])).toEqual([{ n: 0 }])
      })
  )

  it.scoped("unsubscribe acknowledges and stops the events", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      // The suggestions stall, so the session is still running when the client leaves it.
      openai.enqueue(FAKE_VISION, { kind: "hang" })
      const session = yield* newSession(url, alice.headers, screenshot)
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "subscribe", sessionId: session.id, afterSeq: 0 })
      yield* socket.next((frame) => frame.type === "session.event" && frame["event"] === "transcript")
      yield* socket.send({ type: "unsubscribe", sessionId: session.id })
      yield* socket.next(ofType("unsubscribed"))
      const count = socket.frames.length
      // Cancelling publishes a terminal event; an unsubscribed client does not get it.
      const cancelled = yield* Effect.promise(() =>
        fetch(`${url}/api/v1/sessions/${session.id}/cancel`, { method: "POST", headers: alice.headers })
      )
      expect(cancelled.status).toBe(200)
      yield* socket.send({ type: "ping", t: "last" })
      yield* socket.next((frame) => frame["t"] === "last")
      expect(socket.frames.slice(count).map((frame) => frame.type)).toEqual(["pong"])
    })
  )
})
