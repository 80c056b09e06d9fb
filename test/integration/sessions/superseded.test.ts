/**
 * An attempt whose job was taken over (its queue lock lost while its worker was paused: SIGSTOP,
 * a long GC, a partition) must not write its session again when it wakes up. Deterministically:
 * the pipeline's job handler is driven twice with the same job, as the queue would after a lost
 * lock. The first attempt saves its first suggestion and is held mid-stream by the provider; the
 * second takes the session over and completes it; the user likes every suggestion; then the first
 * resumes. It must write nothing (text, feedback, the session's status and cost stay what the
 * second attempt's `completed` said) and stop quietly: its handler succeeds (the session is not
 * failed, the job not retried), its provider stream is cut off (ledger outcome `cancelled`).
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue } from "effect"
import { afterAll } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import {
  createSession,
  drivenSessionJobs,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  uploadPng,
  type WireSession
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())

/** The pipeline's job handler, driven by the test (the queue itself runs nothing). */
const { handler, enqueued, layer: drivenJobs } = drivenSessionJobs()

interface SuggestionRow extends Record<string, unknown> {
  readonly id: string
  readonly batch: number
  readonly position: number
  readonly text: string
  readonly feedback: string | null
}

const suggestionsOf = (id: string) =>
  sql<SuggestionRow>(
    "SELECT id, batch, position, text, feedback FROM suggestions WHERE session_id = $1 ORDER BY batch, position",
    [id]
  )
const sessionOf = (id: string) =>
  sql(
    "SELECT status::text, phase, error_code, cost_micros, completed_at, timings, updated_at FROM sessions WHERE id = $1",
    [id]
  )

layer(testServer({ db: TestDb(), consumer: true, jobs: drivenJobs, config: openAiFakeConfig(openai.url) }), {
  timeout: 120_000
})("sessions: an attempt superseded by another attempt of its job", (it) => {
  it.effect("wakes up after the other completed the session: writes nothing, likes stay, stops quietly", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const release = yield* Deferred.make<void>()
      const released = Effect.runPromise(Deferred.await(release))
      // The first attempt: its vision read, then a stream held after its first line; the second
      // attempt's stream (the fallback) answers at once.
      openai.enqueue(FAKE_VISION, {
        kind: "ok",
        text: "W1 first idea here\nW1 second idea here\nW1 third idea here",
        chunks: ["W1 first idea here\n", "W1 second idea here\n", "W1 third idea here"],
        holdAfter: { deltas: 1, until: released }
      })
      openai.setFallback(FAKE_SUGGESTIONS)

      const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(202)
      const id = (created.body as { data: WireSession }).data.id
      const job = yield* Queue.take(enqueued)
      expect(job.id).toBe(id)
      const attempt = yield* Deferred.await(handler)

      // Attempt 1 runs until its first suggestion is saved, then waits on the provider.
      const first = yield* Effect.fork(attempt(job))
      yield* eventually(suggestionsOf(id), (rows) => rows.length === 1, "the first attempt's first suggestion")

      // Attempt 2 (the takeover) completes the session.
      const second = yield* attempt(job)
      expect(Exit.isSuccess(second)).toBe(true)
      const done = yield* http(`${url}/api/v1/sessions/${id}`, { headers: alice.headers })
      const completed = (done.body as { data: WireSession }).data
      expect(completed.status).toBe("completed")
      expect(completed.suggestions.map((suggestion) => suggestion.text)).toEqual([
        "Coffee sounds great",
        "A walk by the river?",
        "Surprise me"
      ])

      // The user likes every suggestion.
      for (const suggestion of completed.suggestions) {
        const liked = yield* http(`${url}/api/v1/sessions/${id}/suggestions/${suggestion.id}/like`, {
          method: "POST",
          headers: alice.headers
        })
        expect(liked.status).toBe(200)
      }
      const suggestions = yield* suggestionsOf(id)
      expect(suggestions.map((row) => row.feedback)).toEqual(["liked", "liked", "liked"])
      const session = yield* sessionOf(id)
      expect(session[0]?.["cost_micros"]).toBe(completed.costMicros)

      // Attempt 1 wakes up: its next line is refused, it stops without failing.
      yield* Deferred.succeed(release, undefined)
      const firstExit = yield* Fiber.join(first)
      expect(Exit.isSuccess(firstExit)).toBe(true)

      expect(yield* suggestionsOf(id)).toEqual(suggestions)
      expect(yield* sessionOf(id)).toEqual(session)
      const view = yield* http(`${url}/api/v1/sessions/${id}`, { headers: alice.headers })
      const after = (view.body as { data: WireSession }).data
      expect({ ...after, images: undefined }).toEqual({
        ...completed,
        images: undefined,
        suggestions: completed.suggestions.map((suggestion) => ({ ...suggestion, feedback: "liked" }))
      })
      // Its stream was cut off, not read to the end: spent, in the ledger, not in the session's cost.
      const streams = yield* eventually(
        sql<{ outcome: string }>(
          "SELECT outcome FROM ai_calls WHERE session_id = $1 AND feature = 'sessions.suggestions' ORDER BY created_at",
          [id]
        ),
        (rows) => rows.length === 2,
        "both suggestion streams in the ledger"
      )
      expect(streams.map((row) => row.outcome).sort()).toEqual(["cancelled", "ok"])
    })
  )
})
