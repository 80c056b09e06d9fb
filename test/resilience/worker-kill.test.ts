/**
 * `kill -9` of the worker process while it streams the suggestions (a slow provider: seconds
 * between chunks), after the first suggestion was saved. A second worker process takes the
 * stalled job over (short lock and stall check) and the session completes once: one transcript,
 * three suggestions of the first batch, no duplicate row; a WebSocket client on the api,
 * subscribed before the kill, sees `completed` exactly once.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeOpenAI } from "../fakes/ai/index.ts"
import { tinyImage } from "../fixtures/images.ts"
import { FAKE_SUGGESTIONS, FAKE_VISION, uploadPng, type WireSession } from "../integration/sessions/support.ts"
import { sql } from "../support/database.ts"
import { connectAs, type Frame } from "../support/ws.ts"
import { call, killHard, newUser, stack } from "./support.ts"

const openai = await startFakeOpenAI()
const processes = stack({
  OPENAI_API_KEY: "test",
  OPENAI_BASE_URL: openai.url,
  AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
  AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
  AI_BREAKER_FAILURES: "1000",
  AI_DAILY_SPEND_CAP_MICROS: "0",
  QUEUE_LOCK_DURATION_MS: "1000",
  QUEUE_STALLED_INTERVAL_MS: "500",
  QUEUE_BACKOFF_MS: "0",
  RATE_LIMIT_ENABLED: "false"
})
let api = ""

beforeAll(async () => {
  api = (await processes.api()).url
})

afterAll(async () => {
  await processes.stop()
  await openai.close()
})

const terminal = (frame: Frame) =>
  frame.type === "session.event" && ["completed", "failed", "cancelled"].includes(String(frame["event"]))

describe("resilience: a worker killed with kill -9 mid-job", () => {
  it("another worker completes the session once; the WebSocket client sees completed; no duplicate rows", async (context) => {
    const first = await processes.worker()
    const alice = await newUser(api, "kill")
    // The vision read answers at once; the suggestions come a line every 4 s, then (the retry) at once.
    openai.enqueue(FAKE_VISION, {
      kind: "ok",
      text: FAKE_SUGGESTIONS.text,
      chunks: ["Coffee sounds great\n", "A walk by the river?\n", "Surprise me"],
      chunkDelayMs: 4_000
    })
    openai.setFallback(FAKE_SUGGESTIONS)

    const { id, frames, signal } = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const uploadId = yield* uploadPng(api, alice.headers, yield* Effect.promise(() => tinyImage("png")))
          const created = yield* Effect.promise(() =>
            call(`${api}/api/v1/sessions`, {
              method: "POST",
              headers: { ...alice.headers, "content-type": "application/json" },
              body: JSON.stringify({ uploadIds: [uploadId] })
            })
          )
          expect(created.status).toBe(202)
          const id = (created.body as { data: WireSession }).data.id
          const socket = yield* connectAs(api, alice.token)
          yield* socket.send({ type: "subscribe", sessionId: id, afterSeq: 0 })
          // The first suggestion is saved: the worker is in the middle of the slow stream.
          yield* socket.next((f) => f.type === "session.event" && f["event"] === "suggestion")
          const signal = yield* Effect.promise(() => killHard(first))
          yield* Effect.promise(() => processes.worker())
          yield* socket.next(terminal)
          return { id, frames: socket.frames.filter((f) => f.type === "session.event"), signal }
        })
      ),
      { signal: context.signal }
    )
    expect(signal).toBe("SIGKILL")
    const kinds = frames.map((frame) => frame["event"])
    expect(kinds.at(-1)).toBe("completed")
    expect(kinds.filter((kind) => kind === "completed")).toHaveLength(1)
    expect(kinds).not.toContain("failed")

    const done = await call(`${api}/api/v1/sessions/${id}`, { headers: alice.headers })
    expect(done.body).toMatchObject({ success: true, data: { status: "completed", errorCode: null } })
    const session = (done.body as { data: WireSession }).data
    expect(session.suggestions.map((s) => s.text)).toEqual([
      "Coffee sounds great",
      "A walk by the river?",
      "Surprise me"
    ])

    const rows = await Effect.runPromise(
      Effect.all({
        transcript: sql(
          "SELECT position, sender, text FROM transcript_messages WHERE session_id = $1 ORDER BY position",
          [id]
        ),
        suggestions: sql("SELECT batch, position, text FROM suggestions WHERE session_id = $1 ORDER BY position", [id]),
        session: sql("SELECT status, phase, error_code FROM sessions WHERE id = $1", [id])
      })
    )
    expect(rows.transcript).toEqual([
      { position: 0, sender: "them", text: "Are you free on Saturday?" },
      { position: 1, sender: "me", text: "I might be, what's the plan?" }
    ])
    expect(rows.suggestions).toEqual([
      { batch: 0, position: 0, text: "Coffee sounds great" },
      { batch: 0, position: 1, text: "A walk by the river?" },
      { batch: 0, position: 2, text: "Surprise me" }
    ])
    expect(rows.session).toEqual([{ status: "completed", phase: null, error_code: null }])
    // The second worker resumed from the saved transcript: one vision read in all, two suggestion streams.
    expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
    expect(openai.requests.filter((request) => !request.image)).toHaveLength(2)
  })
})
