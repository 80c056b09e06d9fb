/**
 * Known gaps closed: a session whose job could not be enqueued does not stay `queued` (it fails
 * with SERVICE_UNAVAILABLE, the code the client got); an events stream whose progress topic is
 * gone (an in-memory bus after a restart, an expired topic) gets the session's database state as
 * a snapshot once it is terminal, and ends.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { beforeAll } from "vitest"
import { JobQueueUnavailable } from "../../../src/core/queue/job-queue.ts"
import { SessionJobs } from "../../../src/modules/sessions/sessions.jobs.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { createSession, getSession, readEvents, uploadPng, type WireSession } from "./support.ts"

let screenshot: Buffer
beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

/**
 * A session's events stream read as it comes: `readUntil` answers the text so far once `enough`
 * holds or the stream ends.
 */
const openEvents = (url: string, headers: Record<string, string>, id: string) =>
  Effect.gen(function* () {
    const { response, reader } = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const response = await fetch(`${url}/api/v1/sessions/${id}/events`, {
          headers: { accept: "text/event-stream", ...headers }
        })
        return { response, reader: response.body?.getReader() }
      }),
      ({ reader }) => Effect.promise(() => reader?.cancel() ?? Promise.resolve())
    )
    const decoder = new TextDecoder()
    let text = ""
    const readUntil = (enough: (text: string) => boolean) =>
      Effect.promise(async () => {
        while (reader !== undefined && !enough(text)) {
          const chunk = await reader.read()
          if (chunk.done) break
          text += decoder.decode(chunk.value, { stream: true })
        }
        return text
      })
    return { status: response.status, readUntil }
  })

/** The frames of an SSE body (comments and `retry:` left out). */
const sseFrames = (text: string) =>
  text.split("\n\n").flatMap((block) => {
    const lines = block.split("\n")
    const data = lines.filter((line) => line.startsWith("data: ")).map((line) => line.slice(6))
    if (data.length === 0) return []
    const field = (name: string) => lines.find((line) => line.startsWith(`${name}: `))?.slice(name.length + 2)
    return [{ id: field("id"), event: field("event") ?? "message", data: JSON.parse(data.join("\n")) as unknown }]
  })

/** An in-process queue whose enqueue fails, as BullMQ does when Redis is unreachable. */
const queueDown = Layer.effect(
  SessionJobs,
  Effect.map(SessionJobs, (queue) => ({
    ...queue,
    enqueue: () =>
      Effect.fail(new JobQueueUnavailable({ queue: queue.name, operation: "enqueue", cause: new Error("down") }))
  }))
).pipe(Layer.provide(SessionJobs.inProcess({ queueName: "sessions" })))

layer(testServer({ db: TestDb(), jobs: queueDown }), { timeout: 60_000 })("sessions: the queue is down", (it) => {
  it.effect("create answers 503 and the session ends failed (SERVICE_UNAVAILABLE), not queued", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, screenshot)
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(503)
      expect(created.body).toEqual({
        success: false,
        error: { code: "SERVICE_UNAVAILABLE", message: "The job queue is unavailable; try again shortly" }
      })
      const rows = yield* sql<{ id: string; status: string; error_code: string | null; done: boolean }>(
        "SELECT id, status, error_code, completed_at IS NOT NULL AS done FROM sessions WHERE user_id = $1",
        [alice.id]
      )
      expect(rows).toEqual([
        { id: expect.any(String), status: "failed", error_code: "SERVICE_UNAVAILABLE", done: true }
      ])
      // Never run: it does not count against the day's sessions.
      expect(
        yield* sql("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'sessions'", [alice.id])
      ).toEqual([{ used: 0 }])
      const id = rows[0]?.id ?? ""
      const session = yield* getSession(url, alice.headers, id)
      expect(session.body).toMatchObject({ data: { id, status: "failed", errorCode: "SERVICE_UNAVAILABLE" } })
      const events = yield* readEvents(url, alice.headers, id, "0")
      expect(events.frames.map((frame) => [frame.event, frame.data])).toEqual([
        ["status", { status: "queued", phase: null }],
        ["failed", { code: "SERVICE_UNAVAILABLE", message: "The job queue is unavailable; try again shortly" }]
      ])
    })
  )
})

layer(
  testServer({
    db: TestDb(),
    config: { PROGRESS_TTL_SECONDS: "1", SESSION_EVENTS_DB_CHECK_MS: "100" }
  }),
  { timeout: 60_000 }
)("sessions: events without progress", (it) => {
  it.scoped("the topic is gone: the database state comes as the snapshot; terminal there → snapshot, end", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, screenshot)
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      const id = (created.body as { data: WireSession }).data.id
      // The topic expires (as an in-memory bus forgets everything on restart): expiry compares the
      // clock, so past 1.5 s the 1 s topic is gone however slow the machine…
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1_500)))
      // …while another process, whose progress this api never hears, finishes the session.
      yield* sql("UPDATE sessions SET status = 'processing', phase = 'ocr' WHERE id = $1", [id])
      const stream = yield* openEvents(url, alice.headers, id)
      expect(stream.status).toBe(200)
      // The first snapshot has been written (not a guessed delay): only then does the session finish.
      yield* stream.readUntil((text) => /event: snapshot\n[^]*?\n\n/.test(text))
      yield* sql("UPDATE sessions SET status = 'completed', phase = NULL, completed_at = now() WHERE id = $1", [id])
      expect(sseFrames(yield* stream.readUntil(() => false))).toEqual([
        { id: "0", event: "snapshot", data: { status: "processing", phase: "ocr", errorCode: null } },
        { id: "0", event: "snapshot", data: { status: "completed", phase: null, errorCode: null } },
        // The terminal event built from the database: a client that saw only a snapshot need not guess.
        { id: "0", event: "completed", data: { suggestions: [], costMicros: 0, timings: {} } }
      ])
    })
  )
})
