/**
 * Issue #16: a batch of suggestions in which no line could be kept (the model wrote none, or
 * every line was dropped) is never a success. It is asked for once more; empty again, the
 * regeneration answers 502 AI_EMPTY_RESULT (nothing saved, the day's regeneration given back)
 * and the pipeline fails the session with that code (the day's session given back). A wire fake
 * of OpenAI reads the screenshot and writes the suggestions.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeEach } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql } from "../../support/database.ts"
import { failure, postJson } from "../../support/http.ts"
import { baseUrl } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, readEvents, uploadPng, type WireSession, sessionsServer } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

const VISION = {
  kind: "ok" as const,
  text: JSON.stringify({
    messages: ["them: Free on Saturday?", "me: Maybe, what's the plan?"],
    matchName: "Sam",
    app: null,
    confidence: 0.95
  })
}
const FIRST_BATCH = "Hiking, if you are in\nCoffee first?\nSurprise me"

const streamedCalls = () => openai.requests.filter((request) => !request.image).length

/** What the user has used of `kind` today (0 when nothing was ever taken). */
const used = (userId: string, kind: string) =>
  Effect.map(
    sql<{ used: number }>("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = $2", [userId, kind]),
    (rows) => rows.reduce((sum, row) => sum + row.used, 0)
  )

/** A completed session (vision, then the three suggestions of FIRST_BATCH unless others are given). */
const startSession = (url: string, headers: Record<string, string>, suggestions: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    openai.enqueue(VISION, ...suggestions.map((text) => ({ kind: "ok" as const, text })))
    const upload = yield* uploadPng(url, headers, yield* Effect.promise(() => tinyImage("png", 64, 48)))
    const created = yield* createSession(url, headers, { uploadIds: [upload] })
    expect(created.status).toBe(202)
    return (created.body as { data: WireSession }).data.id
  })

layer(sessionsServer(openai.url), { timeout: 120_000 })("sessions: an empty batch is not a success", (it) => {
  it.effect("regeneration: nothing kept twice (no line, then only repeats) → 502 AI_EMPTY_RESULT, not counted", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const id = yield* startSession(url, alice.headers, [FIRST_BATCH])
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done.suggestions).toHaveLength(3)

      // The model writes nothing, then only the session's earlier suggestions (exact repeats are dropped).
      openai.enqueue({ kind: "ok", text: "" }, { kind: "ok", text: FIRST_BATCH })
      const callsBefore = streamedCalls()
      const res = yield* postJson(`${url}/api/v1/sessions/${id}/suggestions`, "{}", alice.headers)
      expect(res.status).toBe(502)
      expect(res.body).toEqual(
        failure(
          "AI_EMPTY_RESULT",
          "The AI wrote no suggestion that could be kept, twice; nothing was saved or counted",
          { attempts: 2 }
        )
      )
      expect(streamedCalls() - callsBefore).toBe(2)
      expect(yield* sql("SELECT batch FROM suggestions WHERE session_id = $1 AND batch > 0", [id])).toEqual([])
      expect(yield* used(alice.id, "regenerations")).toBe(0)
    })
  )

  it.effect("regeneration: an empty answer is asked for once more; the second batch is saved and counted", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const id = yield* startSession(url, alice.headers, [FIRST_BATCH])
      expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")

      openai.enqueue({ kind: "ok", text: "\n\n" }, { kind: "ok", text: "A brand new one\nAnother new one" })
      const callsBefore = streamedCalls()
      const res = yield* postJson(`${url}/api/v1/sessions/${id}/suggestions`, "{}", alice.headers)
      expect(res.status).toBe(200)
      const data = (res.body as { data: { batch: number; suggestions: ReadonlyArray<{ text: string }> } }).data
      expect(data.suggestions.map((s) => s.text)).toEqual(["A brand new one", "Another new one"])
      expect(streamedCalls() - callsBefore).toBe(2)
      expect(yield* used(alice.id, "regenerations")).toBe(1)
    })
  )

  it.effect("pipeline: batch 0 empty twice → the session fails with AI_EMPTY_RESULT; its day's unit given back", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const id = yield* startSession(url, alice.headers, ["", ""])
      const events = yield* readEvents(url, alice.headers, id, "0")
      expect(events.frames.at(-1)).toMatchObject({
        event: "failed",
        data: { code: "AI_EMPTY_RESULT", message: "The AI wrote no reply that could be kept; try again" }
      })
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done).toMatchObject({ status: "failed", errorCode: "AI_EMPTY_RESULT", suggestions: [] })
      expect(yield* used(alice.id, "sessions")).toBe(0)
    })
  )
})
