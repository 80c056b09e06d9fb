/**
 * Sessions end to end in one process, on the real PostgreSQL and Redis (BullMQ queue, Redis
 * progress bus), no AI key: local OCR reads a generated chat screenshot and the local provider
 * writes the suggestions. Events in order (transcript before suggestions), rows as expected,
 * ownership (404 for another user's uploads and sessions), cancel and delete.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { beforeAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, getSession, readEvents, uploadPng, type WireSession } from "./support.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const redisConfig = {
  REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`
}

layer(testServer({ db: TestDb(), redis: Redis.layer, config: redisConfig, consumer: true }), { timeout: 120_000 })(
  "sessions: the pipeline (BullMQ, Redis progress, local OCR, local provider)",
  (it) => {
    it.effect("upload → create (202) → events in order → completed, with transcript and suggestion rows", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, screenshot)
        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId], tone: "witty" })
        expect(created.status).toBe(202)
        const session = (created.body as { data: WireSession }).data
        expect(session).toMatchObject({ status: "queued", phase: null, transcript: [], suggestions: [] })

        // From seq 0: every event, replayed then live, until the terminal one.
        const events = yield* readEvents(url, alice.headers, session.id, "0")
        expect(events.status).toBe(200)
        expect(events.contentType).toMatch(/^text\/event-stream/)
        const kinds = events.frames.map((frame) => frame.event)
        expect(kinds.at(-1)).toBe("completed")
        const transcriptAt = kinds.indexOf("transcript")
        const firstSuggestion = kinds.indexOf("suggestion")
        expect(transcriptAt).toBeGreaterThan(-1)
        expect(firstSuggestion).toBeGreaterThan(transcriptAt)
        expect(kinds.indexOf("delta")).toBeGreaterThan(transcriptAt)
        expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)
        // Each message carries its position (what the transcript PATCH names), 0, 1, 2… in order.
        const { messages } = events.frames[transcriptAt]?.data as { messages: ReadonlyArray<{ position: number }> }
        expect(messages.length).toBeGreaterThan(0)
        expect(messages.map((message) => message.position)).toEqual(messages.map((_, index) => index))
        // ids are the seqs, strictly increasing from 1.
        const ids = events.frames.map((frame) => Number(frame.id))
        expect(ids[0]).toBe(1)
        for (let i = 1; i < ids.length; i++) expect(ids[i]).toBe((ids[i - 1] ?? 0) + 1)

        const done = yield* awaitFinished(url, alice.headers, session.id)
        expect(done.status).toBe("completed")
        expect(done.errorCode).toBeNull()
        const words = done.transcript.map((message) => message.text).join(" ")
        expect(words).toMatch(/hiking/i)
        expect(words).toMatch(/Saturday/i)
        expect(done.transcript.some((message) => message.sender === "them")).toBe(true)
        expect(done.transcript.some((message) => message.sender === "me")).toBe(true)
        expect(done.suggestions).toHaveLength(3)
        for (const suggestion of done.suggestions) {
          expect(suggestion.text).toMatch(/\[local \d\]$/)
          expect(suggestion.tone).toBe("witty")
        }

        const messageRows = yield* sql<{ position: number }>(
          "SELECT position FROM transcript_messages WHERE session_id = $1 ORDER BY position",
          [session.id]
        )
        expect(done.transcript.map((message) => message.position)).toEqual(messageRows.map((row) => row.position))
        expect(done.transcript).toEqual(messages)
        const suggestionRows = yield* sql("SELECT batch, position FROM suggestions WHERE session_id = $1", [session.id])
        expect(suggestionRows).toHaveLength(3)
        const cache = yield* sql("SELECT provider FROM ocr_results WHERE user_id = $1", [alice.id])
        expect(cache).toEqual([{ provider: "local-ocr:eng" }])
        const [row] = yield* sql<{ status: string; timings: Record<string, number> }>(
          "SELECT status, timings FROM sessions WHERE id = $1",
          [session.id]
        )
        expect(row?.status).toBe("completed")
        expect(Object.keys(row?.timings ?? {}).sort()).toEqual(["normalise", "ocr", "suggestions", "transcript"])
        // started_at is when processing began (regression: each phase overwrote it with its own start).
        const [times] = yield* sql<{ started_before_transcript: boolean }>(
          `SELECT s.started_at <= (SELECT min(m.created_at) FROM transcript_messages m WHERE m.session_id = s.id)
             AS started_before_transcript
           FROM sessions s WHERE s.id = $1`,
          [session.id]
        )
        expect(times?.started_before_transcript).toBe(true)

        // The terminal event carries the final summary: the suggestions as saved, the cost.
        const [costRow] = yield* sql<{ cost_micros: number }>("SELECT cost_micros FROM sessions WHERE id = $1", [
          session.id
        ])
        expect(events.frames.at(-1)?.data).toEqual({
          suggestions: done.suggestions,
          costMicros: costRow?.cost_micros,
          timings: done.timings
        })
        // `retry:` first; then the stream ends after the terminal event, and a reconnect carrying its id is 204.
        expect(events.text.startsWith("retry: 3000\n\n")).toBe(true)
        const reconnect = yield* readEvents(url, alice.headers, session.id, events.frames.at(-1)?.id)
        expect(reconnect.status).toBe(204)
        expect(reconnect.text).toBe("")
        // An id from before the end still resumes: what came after it, the terminal event last.
        const resumed = yield* readEvents(url, alice.headers, session.id, String((ids.at(-1) ?? 0) - 1))
        expect(resumed.status).toBe(200)
        expect(resumed.frames).toEqual([events.frames.at(-1)])

        // A late listener gets the terminal snapshot, then the terminal event with the summary, and the stream ends.
        const late = yield* readEvents(url, alice.headers, session.id)
        expect(late.frames.map((frame) => frame.event)).toEqual(["snapshot", "completed"])
        expect(late.frames[0]?.data).toEqual({ status: "completed", phase: null, errorCode: null })
        expect(late.frames[1]).toEqual({ ...events.frames.at(-1), id: late.frames[0]?.id })
        const lateReconnect = yield* readEvents(url, alice.headers, session.id, late.frames[1]?.id)
        expect(lateReconnect.status).toBe(204)

        // Listed, newest first.
        const list = yield* http(`${url}/api/v1/sessions`, { headers: alice.headers })
        expect(list.body).toMatchObject({
          success: true,
          data: { items: [{ id: session.id, status: "completed", imageCount: 1 }], nextCursor: null }
        })
      })
    )

    it.effect("the same screenshot again reuses the OCR result (one cache row)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        for (let i = 0; i < 2; i++) {
          const uploadId = yield* uploadPng(url, alice.headers, screenshot)
          const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
          const done = yield* awaitFinished(url, alice.headers, (created.body as { data: WireSession }).data.id)
          expect(done.status).toBe("completed")
        }
        expect(yield* sql("SELECT 1 FROM ocr_results WHERE user_id = $1", [alice.id])).toHaveLength(1)
      })
    )

    it.effect("deleting a session takes its transcript out of the OCR cache: the same screenshot is read again", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const run = Effect.gen(function* () {
          const uploadId = yield* uploadPng(url, alice.headers, screenshot)
          const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
          const done = yield* awaitFinished(url, alice.headers, (created.body as { data: WireSession }).data.id)
          expect(done.status).toBe("completed")
          return done.id
        })
        const cached = sql<{ created_at: Date }>("SELECT created_at FROM ocr_results WHERE user_id = $1", [alice.id])
        const first = yield* run
        const [before] = yield* cached
        expect(before).toBeDefined()
        const deleted = yield* http(`${url}/api/v1/sessions/${first}`, { method: "DELETE", headers: alice.headers })
        expect(deleted.status).toBe(204)
        // The README's privacy table: a transcript is gone with its session, the cached read included.
        expect(yield* cached).toEqual([])
        yield* run
        const [after] = yield* cached
        expect(after?.created_at.getTime()).toBeGreaterThan(before?.created_at.getTime() ?? Infinity)
      })
    )

    it.effect("another user's upload or session answers 404; a used upload 409 naming it", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, screenshot)
        const stolen = yield* createSession(url, bob.headers, { uploadIds: [uploadId] })
        expect(stolen.status).toBe(404)
        expect(stolen.body).toMatchObject({ success: false, error: { code: "NOT_FOUND", details: { uploadId } } })

        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        expect(created.status).toBe(202)
        const id = (created.body as { data: WireSession }).data.id
        const again = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        expect(again.status).toBe(409)
        expect(again.body).toMatchObject({ error: { code: "UPLOAD_ALREADY_USED", details: { uploadId } } })

        for (const path of [`/${id}`, `/${id}/events`]) {
          const res = yield* http(`${url}/api/v1/sessions${path}`, { headers: bob.headers })
          expect(res.status).toBe(404)
        }
        for (const [method, path] of [
          ["POST", `/${id}/cancel`],
          ["DELETE", `/${id}`]
        ] as const) {
          const res = yield* http(`${url}/api/v1/sessions${path}`, { method, headers: bob.headers })
          expect(res.status).toBe(404)
        }
        const list = yield* http(`${url}/api/v1/sessions`, { headers: bob.headers })
        expect(list.body).toMatchObject({ data: { items: [] } })
        yield* awaitFinished(url, alice.headers, id)
      })
    )

    it.effect("validation: 1 to 10 uploads, context at most 500 characters", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const none = yield* createSession(url, alice.headers, { uploadIds: [] })
        expect(none.status).toBe(400)
        const long = yield* createSession(url, alice.headers, { uploadIds: ["abc"], context: "x".repeat(501) })
        expect(long.status).toBe(400)
      })
    )
  }
)

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("sessions: cancel and delete (no consumer)", (it) => {
  it.effect("a queued session is cancelled (idempotent), then deleted (204, then 404)", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, screenshot)
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      const id = (created.body as { data: WireSession }).data.id
      for (let i = 0; i < 2; i++) {
        const cancelled = yield* http(`${url}/api/v1/sessions/${id}/cancel`, { method: "POST", headers: alice.headers })
        expect(cancelled.status).toBe(200)
        expect(cancelled.body).toMatchObject({ data: { id, status: "cancelled" } })
      }
      const events = yield* readEvents(url, alice.headers, id, "0")
      expect(events.frames.map((frame) => frame.event)).toEqual(["status", "cancelled"])
      const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
      expect(deleted.status).toBe(204)
      expect((yield* getSession(url, alice.headers, id)).status).toBe(404)
      expect(yield* sql("SELECT 1 FROM session_images WHERE session_id = $1", [id])).toHaveLength(0)
    })
  )

  it.effect("account erasure removes the queued sessions (job, progress, rows)", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, screenshot)
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(202)
      const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
      expect(erased.status).toBe(204)
      expect(yield* sql("SELECT 1 FROM sessions WHERE user_id = $1", [alice.id])).toHaveLength(0)
    })
  )
})
