/**
 * Redis stopped (`kill -9` of a private `redis-server`, nothing saved) and started again on the
 * same port, under a small load of authenticated REST reads, with rate limiting on:
 * - REST answers 200 throughout (the rate limiter degrades to allowing, never to an error);
 * - readiness says Redis is down, then up;
 * - a session created while Redis is down answers 503 SERVICE_UNAVAILABLE and ends `failed`
 *   with that code; one created after it is back completes (the queue resumes);
 * - a WebSocket client following a session across the outage resubscribes with its last seq and
 *   gets the rest through the end (the progress buffer died with Redis: the events stream's
 *   database check ends it with a snapshot of the final state);
 * - a WebSocket connection opened during the outage is accepted (connection limits degrade too).
 * The machine's shared Redis is never touched.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeOpenAI } from "../fakes/ai/index.ts"
import { tinyImage } from "../fixtures/images.ts"
import { FAKE_SUGGESTIONS, FAKE_VISION, uploadPng, type WireSession } from "../integration/sessions/support.ts"
import { sql } from "../support/database.ts"
import { connectAs, type Frame, type TestSocket } from "../support/ws.ts"
import { call, loop, newUser, type PrivateRedis, stack, startPrivateRedis, tally, until, type User } from "./support.ts"

const openai = await startFakeOpenAI()
let redis: PrivateRedis
let processes: ReturnType<typeof stack>
let api = ""
let apiOutput = () => ""
let alice: User

beforeAll(async () => {
  redis = await startPrivateRedis()
  processes = stack({
    REDIS_URL: redis.url,
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
    AI_BREAKER_FAILURES: "1000",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    QUEUE_BACKOFF_MS: "0",
    // Rate limiting on, with limits this test never reaches: what is exercised is the limiter
    // itself while its Redis is gone.
    RATE_LIMIT_ENABLED: "true",
    RATE_LIMIT_REST_USER: "100000/60s",
    RATE_LIMIT_REST_IP: "100000/60s",
    RATE_LIMIT_WS_CONNECT_USER: "1000/60s",
    RATE_LIMIT_WS_CONNECT_IP: "1000/60s",
    SESSION_EVENTS_DB_CHECK_MS: "300"
  })
  const started = await processes.api()
  api = started.url
  apiOutput = started.process.output
  await processes.worker()
  alice = await newUser(api, "redis")
})

afterAll(async () => {
  await processes.stop()
  await redis.stop()
  await openai.close()
})

const isTerminalFrame = (frame: Frame) =>
  frame.type === "session.event" &&
  (["completed", "failed", "cancelled"].includes(String(frame["event"])) ||
    (frame["event"] === "snapshot" &&
      ["completed", "failed", "cancelled"].includes(String((frame["data"] as { status?: string }).status))))

const ready = async () => {
  const reply = await call(`${api}/health/ready`, {}, 5_000)
  return {
    status: reply.status,
    checks: reply.body as { data?: { checks?: unknown }; error?: { details?: { checks?: unknown } } }
  }
}

const createSession = (uploadId: string) =>
  call(
    `${api}/api/v1/sessions`,
    {
      method: "POST",
      headers: { ...alice.headers, "content-type": "application/json" },
      body: JSON.stringify({ uploadIds: [uploadId] })
    },
    15_000
  )

// Images of different sizes: an identical image would reuse the first one's OCR result.
let uploads = 0
const upload = () =>
  Effect.runPromise(
    Effect.flatMap(
      Effect.promise(() => tinyImage("png", 64 + uploads++, 48)),
      (png) => uploadPng(api, alice.headers, png)
    )
  )

const lastSeq = (socket: TestSocket, sessionId: string) =>
  socket.frames
    .filter((frame) => frame.type === "session.event" && frame["sessionId"] === sessionId)
    .reduce((max, frame) => Math.max(max, Number(frame["seq"])), 0)

describe("resilience: Redis stopped and restarted under load", () => {
  it("REST keeps answering, readiness follows Redis, the queue resumes, WebSocket clients resynchronise", async ({
    signal
  }) => {
    // A session in the middle of its suggestions when Redis dies: a line every 2 s.
    openai.enqueue(FAKE_VISION, {
      kind: "ok",
      text: FAKE_SUGGESTIONS.text,
      chunks: ["Coffee sounds great\n", "A walk by the river?\n", "Surprise me"],
      chunkDelayMs: 2_000
    })
    const before = await createSession(await upload())
    expect(before.status).toBe(202)
    const followed = (before.body as { data: WireSession }).data.id
    const pending = await upload()
    const later = await upload()

    await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const socket = yield* connectAs(api, alice.token)
          yield* socket.send({ type: "subscribe", sessionId: followed, afterSeq: 0 })
          yield* socket.next((f) => f.type === "session.event" && f["event"] === "transcript")

          const load = loop(`${api}/api/v1/sessions?limit=5`, { headers: alice.headers }, 2)
          yield* Effect.promise(() => redis.kill())
          const killedAt = Date.now()

          // Readiness says Redis is down.
          const down = yield* Effect.promise(() =>
            until("readiness to report Redis down", async () => {
              const state = await ready()
              return state.status === 503 ? state : undefined
            })
          )
          expect(down.checks).toMatchObject({
            success: false,
            error: { code: "SERVICE_UNAVAILABLE", details: { checks: { database: "ok", redis: "failed" } } }
          })

          // A new session cannot be queued: 503, and it does not stay `queued`.
          const refused = yield* Effect.promise(() => createSession(pending))
          expect(refused.status).toBe(503)
          expect(refused.body).toMatchObject({ success: false, error: { code: "SERVICE_UNAVAILABLE" } })
          const [failed] = yield* sql<{ status: string; error_code: string | null }>(
            "SELECT status, error_code FROM sessions WHERE user_id = $1 AND id <> $2",
            [alice.id, followed]
          )
          expect(failed).toEqual({ status: "failed", error_code: "SERVICE_UNAVAILABLE" })

          // A WebSocket connection opened now is accepted and authenticated (its limits degrade).
          const during = yield* connectAs(api, alice.token)
          yield* during.send({ type: "ping", t: 1 })
          expect(yield* during.next((f) => f.type === "pong")).toMatchObject({ type: "pong", t: 1 })

          yield* Effect.promise(() => redis.restart())
          const restartedAt = Date.now()
          const up = yield* Effect.promise(() =>
            until("readiness to report Redis up", async () => {
              const state = await ready()
              return state.status === 200 ? state : undefined
            })
          )
          expect(up.checks).toMatchObject({ success: true, data: { checks: { database: "ok", redis: "ok" } } })

          // The client resubscribes from the last seq it saw and is brought to the end.
          const seen = lastSeq(socket, followed)
          expect(seen).toBeGreaterThan(0)
          yield* socket.send({ type: "subscribe", sessionId: followed, afterSeq: seen })
          const end = yield* socket.next((f) => f["sessionId"] === followed && isTerminalFrame(f))
          const final = (yield* Effect.promise(() =>
            call(`${api}/api/v1/sessions/${followed}`, { headers: alice.headers })
          )).body as { data: WireSession }
          expect(["completed", "failed"]).toContain(final.data.status)
          // What the client was told at the end is the session's real final state.
          expect(end["event"] === "snapshot" ? (end["data"] as { status: string }).status : end["event"]).toBe(
            final.data.status
          )

          // The queue resumes: a session created now completes.
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const after = yield* Effect.promise(() => createSession(later))
          expect(after.status).toBe(202)
          const resumed = (after.body as { data: WireSession }).data.id
          yield* socket.send({ type: "subscribe", sessionId: resumed, afterSeq: 0 })
          const resumedEnd = yield* socket.next((f) => f["sessionId"] === resumed && isTerminalFrame(f))
          expect(resumedEnd["event"]).toBe("completed")
          expect(yield* sql("SELECT status, error_code FROM sessions WHERE id = $1", [resumed])).toEqual([
            { status: "completed", error_code: null }
          ])
          expect(yield* sql("SELECT position FROM suggestions WHERE session_id = $1", [resumed])).toHaveLength(3)
          const replies = yield* Effect.promise(() => load.stop())
          expect(replies.length).toBeGreaterThan(0)
          expect(tally(replies)).toEqual({ "200": replies.length })
          expect(replies.filter((reply) => reply.at > killedAt && reply.at < restartedAt).length).toBeGreaterThan(5)
          // The limiter met the outage and allowed (one warning), rather than failing the calls.
          expect(apiOutput()).toContain("RateLimiter: Redis unavailable, calls are allowed unmetered")
        })
      ),
      { signal }
    )
  })
})
