/**
 * After the pipeline: the user fixes the transcript (PATCH, idempotent, only once completed or
 * failed), regenerates suggestions from the stored transcript (no OCR, never repeating the
 * session's earlier ones; SSE or envelope) and likes or dislikes suggestions (idempotent).
 * In-process queue, local OCR and local provider; ownership answers 404 as for a missing id.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { http, postJson } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, sseFrames, uploadPng, type WireSession } from "./support.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const json = (headers: Record<string, string>) => ({ "content-type": "application/json", ...headers })

const patchJson = (url: string, headers: Record<string, string>, body: unknown) =>
  http(url, { method: "PATCH", headers: json(headers), body: JSON.stringify(body) })

const completedSession = (url: string, headers: Record<string, string>, payload: Record<string, unknown> = {}) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, headers, screenshot)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId], ...payload })
    expect(created.status).toBe(202)
    const done = yield* awaitFinished(url, headers, (created.body as { data: WireSession }).data.id)
    expect(done.status).toBe("completed")
    return done
  })

const MISSING = "c0000000000000000000000000"

layer(testServer({ db: TestDb(), consumer: true }), { timeout: 120_000 })(
  "sessions: transcript fixes, regeneration, feedback",
  (it) => {
    it.effect("PATCH transcript fixes a speaker and a word (idempotent); bad positions 400; others 404", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers)
        expect(done.transcript.length).toBeGreaterThanOrEqual(2)
        const first = done.transcript[0]
        const flipped = first?.sender === "me" ? "them" : "me"
        const fixes = {
          messages: [
            { position: 0, sender: flipped },
            { position: 1, text: "Fixed words here" }
          ]
        }
        const expected = done.transcript.map((message, position) =>
          position === 0
            ? { ...message, sender: flipped, confidence: 1 }
            : position === 1
              ? { ...message, text: "Fixed words here", confidence: 1 }
              : message
        )
        const path = `${url}/api/v1/sessions/${done.id}/transcript`
        const patched = yield* patchJson(path, alice.headers, fixes)
        expect(patched.status).toBe(200)
        expect((patched.body as { data: WireSession }).data.transcript).toEqual(expected)
        const again = yield* patchJson(path, alice.headers, fixes)
        expect(again.status).toBe(200)
        // The same session; its thumbnails' URLs are signed anew per answer, so their expiry moves
        // with the clock (a second boundary between the two answers, likelier on a loaded machine).
        const unsigned = (body: unknown) => {
          const data = (body as { data: WireSession & { images: ReadonlyArray<{ position: number }> } }).data
          return { ...data, images: data.images.map((image) => image.position) }
        }
        expect(unsigned(again.body)).toEqual(unsigned(patched.body))
        const rows = yield* sql<{ position: number; sender: string; text: string; confidence: number }>(
          "SELECT position, sender, text, confidence FROM transcript_messages WHERE session_id = $1 AND position < 2 ORDER BY position",
          [done.id]
        )
        expect(rows).toEqual([
          { position: 0, sender: flipped, text: first?.text, confidence: 1 },
          { position: 1, sender: done.transcript[1]?.sender, text: "Fixed words here", confidence: 1 }
        ])

        // A position the transcript does not have: 400 naming it, nothing written.
        const beyond = done.transcript.length + 5
        const bad = yield* patchJson(path, alice.headers, {
          messages: [
            { position: 0, text: "Not written" },
            { position: beyond, text: "x" }
          ]
        })
        expect(bad.status).toBe(400)
        expect(bad.body).toMatchObject({
          success: false,
          error: { code: "BAD_REQUEST", details: { positions: [beyond] } }
        })
        const [kept] = yield* sql<{ text: string }>(
          "SELECT text FROM transcript_messages WHERE session_id = $1 AND position = 0",
          [done.id]
        )
        expect(kept?.text).toBe(first?.text)

        // Shape: a fix needs a sender or a text; positions once; no extra keys; 1 to 200 fixes.
        for (const body of [
          { messages: [{ position: 0 }] },
          {
            messages: [
              { position: 0, text: "a" },
              { position: 0, text: "b" }
            ]
          },
          { messages: [{ position: 0, text: "a", confidence: 1 }] },
          { messages: [{ position: -1, text: "a" }] },
          { messages: [{ position: 0, sender: "bot" }] },
          { messages: [] }
        ]) {
          const res = yield* patchJson(path, alice.headers, body)
          expect(res.status).toBe(400)
          expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
        }

        // Another user's session answers exactly as a missing one.
        const stolen = yield* patchJson(path, bob.headers, fixes)
        const missing = yield* patchJson(`${url}/api/v1/sessions/${MISSING}/transcript`, bob.headers, fixes)
        expect(stolen.status).toBe(404)
        expect(stolen.body).toEqual(missing.body)
      })
    )

    it.effect("POST suggestions: a new batch in another tone, never repeating (SSE, then envelope)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers, { tone: "witty" })
        const first = done.suggestions.map((suggestion) => suggestion.text)
        expect(first).toHaveLength(3)
        const path = `${url}/api/v1/sessions/${done.id}/suggestions`

        const response = yield* Effect.promise(() =>
          fetch(path, {
            method: "POST",
            headers: { ...json(alice.headers), accept: "text/event-stream" },
            body: JSON.stringify({ tone: "sincere", instruction: "Shorter, and ask about the weekend" })
          })
        )
        expect(response.status).toBe(200)
        expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/)
        const text = yield* Effect.promise(() => response.text())
        const frames = sseFrames(text)
        const saved = frames.flatMap((frame) =>
          frame.event === "suggestion"
            ? [(frame.data as { suggestion: { text: string; tone: string; batch: number } }).suggestion]
            : []
        )
        // The local provider has five lines; three were used by batch 0, so two remain.
        expect(saved.map((s) => s.text)).toEqual([
          "Same here, honestly. Want to swap stories over coffee sometime? [local 4]",
          "You have good taste. What else should I know about you? [local 5]"
        ])
        for (const suggestion of saved) expect(suggestion).toMatchObject({ tone: "sincere", batch: 1 })
        // The terminal event carries the batch as saved; every event has an id `<batch>:<n>`.
        expect(frames.at(-1)).toEqual({
          id: `1:${frames.length}`,
          event: "final",
          data: { batch: 1, suggestions: saved }
        })
        expect(frames.map((frame) => frame.id)).toEqual(frames.map((_, n) => `1:${n + 1}`))
        expect(text.startsWith("retry: 3000\n\n")).toBe(true)
        expect(frames.filter((frame) => frame.event === "delta").length).toBeGreaterThan(0)

        // Every line is now an earlier suggestion: the next batch drops them all, twice, and an
        // empty batch is not a success (issue #16): 502 AI_EMPTY_RESULT, nothing saved.
        const envelope = yield* postJson(path, JSON.stringify({}), alice.headers)
        expect(envelope.status).toBe(502)
        expect(envelope.body).toMatchObject({ success: false, error: { code: "AI_EMPTY_RESULT" } })

        const rows = yield* sql<{ batch: number; position: number; tone: string }>(
          "SELECT batch, position, tone FROM suggestions WHERE session_id = $1 ORDER BY batch, position",
          [done.id]
        )
        expect(rows).toEqual([
          { batch: 0, position: 0, tone: "witty" },
          { batch: 0, position: 1, tone: "witty" },
          { batch: 0, position: 2, tone: "witty" },
          { batch: 1, position: 0, tone: "sincere" },
          { batch: 1, position: 1, tone: "sincere" }
        ])
        // No OCR again: still the one cache row, the transcript unchanged.
        expect(yield* sql("SELECT 1 FROM ocr_results WHERE user_id = $1", [alice.id])).toHaveLength(1)

        const long = yield* postJson(path, JSON.stringify({ instruction: "x".repeat(301) }), alice.headers)
        expect(long.status).toBe(400)
        const stolen = yield* postJson(path, JSON.stringify({}), bob.headers)
        const missing = yield* postJson(
          `${url}/api/v1/sessions/${MISSING}/suggestions`,
          JSON.stringify({}),
          bob.headers
        )
        expect(stolen.status).toBe(404)
        expect(stolen.body).toEqual(missing.body)
      })
    )

    it.effect("two regenerations at once get a batch number each (a double tap never merges two batches)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers, { tone: "witty" })
        const path = `${url}/api/v1/sessions/${done.id}/suggestions`
        const answers = yield* Effect.all([postJson(path, "{}", alice.headers), postJson(path, "{}", alice.headers)], {
          concurrency: "unbounded"
        })
        expect(answers.map((res) => res.status)).toEqual([200, 200])
        const batches = answers.map((res) => (res.body as { data: { batch: number } }).data.batch)
        expect([...batches].sort()).toEqual([1, 2])
        const rows = yield* sql<{ batch: number; n: number }>(
          "SELECT batch, count(*)::int AS n FROM suggestions WHERE session_id = $1 GROUP BY batch ORDER BY batch",
          [done.id]
        )
        // The local provider's two unused lines, once in each batch.
        expect(rows).toEqual([
          { batch: 0, n: 3 },
          { batch: 1, n: 2 },
          { batch: 2, n: 2 }
        ])
      })
    )

    it.effect("like, unlike, dislike with a reason: idempotent, stored; others 404", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers)
        const suggestion = done.suggestions[0]
        if (suggestion === undefined) return yield* Effect.dieMessage("no suggestion")
        const base = `${url}/api/v1/sessions/${done.id}/suggestions/${suggestion.id}`
        const row = () =>
          Effect.map(
            sql<{ feedback: string | null; dislike_reason: string | null; at: boolean }>(
              "SELECT feedback, dislike_reason, feedback_at IS NOT NULL AS at FROM suggestions WHERE id = $1",
              [suggestion.id]
            ),
            (rows) => rows[0]
          )

        for (let i = 0; i < 2; i++) {
          const liked = yield* http(`${base}/like`, { method: "POST", headers: alice.headers })
          expect(liked.status).toBe(200)
          expect(liked.body).toEqual({ success: true, data: { ...suggestion, feedback: "liked" } })
        }
        expect(yield* row()).toEqual({ feedback: "liked", dislike_reason: null, at: true })
        for (let i = 0; i < 2; i++) {
          const unliked = yield* http(`${base}/like`, { method: "DELETE", headers: alice.headers })
          expect(unliked.status).toBe(200)
          expect(unliked.body).toEqual({ success: true, data: { ...suggestion, feedback: null } })
        }
        expect(yield* row()).toEqual({ feedback: null, dislike_reason: null, at: false })
        const disliked = yield* postJson(`${base}/dislike`, JSON.stringify({ reason: "too cheesy" }), alice.headers)
        expect(disliked.status).toBe(200)
        expect(disliked.body).toEqual({
          success: true,
          data: { ...suggestion, feedback: "disliked", dislikeReason: "too cheesy" }
        })
        expect(yield* row()).toEqual({ feedback: "disliked", dislike_reason: "too cheesy", at: true })
        const bare = yield* http(`${base}/dislike`, { method: "POST", headers: alice.headers })
        expect(bare.status).toBe(200)
        expect(yield* row()).toEqual({ feedback: "disliked", dislike_reason: null, at: true })
        // DELETE like on a disliked suggestion leaves it disliked.
        const untouched = yield* http(`${base}/like`, { method: "DELETE", headers: alice.headers })
        expect(untouched.body).toEqual({
          success: true,
          data: { ...suggestion, feedback: "disliked", dislikeReason: null }
        })

        const missing = yield* http(`${url}/api/v1/sessions/${done.id}/suggestions/${MISSING}/like`, {
          method: "POST",
          headers: alice.headers
        })
        expect(missing.status).toBe(404)
        for (const [method, path] of [
          ["POST", "/like"],
          ["DELETE", "/like"],
          ["POST", "/dislike"]
        ] as const) {
          const res = yield* http(`${base}${path}`, { method, headers: bob.headers })
          expect(res.status).toBe(404)
          expect(res.body).toEqual(missing.body)
        }
        expect(yield* row()).toEqual({ feedback: "disliked", dislike_reason: null, at: true })
      })
    )
  }
)

layer(testServer({ db: TestDb() }), { timeout: 60_000 })(
  "sessions: fixes and regeneration wait for the pipeline",
  (it) => {
    it.effect("a queued session: PATCH transcript and POST suggestions answer 409 CONFLICT", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, screenshot)
        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        const id = (created.body as { data: WireSession }).data.id
        const patched = yield* patchJson(`${url}/api/v1/sessions/${id}/transcript`, alice.headers, {
          messages: [{ position: 0, text: "x" }]
        })
        expect(patched.status).toBe(409)
        expect(patched.body).toEqual({
          success: false,
          error: {
            code: "CONFLICT",
            message: "The transcript can be fixed once the session is completed or failed",
            details: { status: "queued" }
          }
        })
        const regenerated = yield* postJson(
          `${url}/api/v1/sessions/${id}/suggestions`,
          JSON.stringify({}),
          alice.headers
        )
        expect(regenerated.status).toBe(409)
        expect(regenerated.body).toEqual({
          success: false,
          error: {
            code: "CONFLICT",
            message: "Suggestions can be regenerated once the session is completed",
            details: { status: "queued" }
          }
        })
      })
    )
  }
)
