/**
 * Every AI provider down (a wire fake answering 500): the vision read gives way to local OCR, so
 * the transcript is still read and saved; the suggestion step then fails and the session ends
 * `failed` with AI_UNAVAILABLE, published as the terminal event.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql } from "../../support/database.ts"
import { baseUrl } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, sessionRun, sessionsServer } from "./support.ts"

const openai = await startFakeOpenAI()
openai.setFallback({ kind: "status", status: 500 })
afterAll(() => openai.close())

let screenshot: Buffer
beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

layer(sessionsServer(openai.url), { timeout: 120_000 })("sessions: every provider down", (it) => {
  it.effect("local OCR reads the transcript; the suggestions fail the session with AI_UNAVAILABLE", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const { id, events } = yield* sessionRun(url, alice.headers, screenshot)
      const kinds = events.frames.map((frame) => frame.event)
      expect(kinds.indexOf("transcript")).toBeGreaterThan(-1)
      expect(kinds).not.toContain("suggestion")
      expect(events.frames.at(-1)).toMatchObject({ event: "failed", data: { code: "AI_UNAVAILABLE" } })

      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done).toMatchObject({ status: "failed", errorCode: "AI_UNAVAILABLE", suggestions: [] })
      expect(done.transcript.map((message) => message.text).join(" ")).toMatch(/hiking/i)
      expect(yield* sql("SELECT provider FROM ocr_results WHERE user_id = $1", [alice.id])).toEqual([
        { provider: "local-ocr:eng" }
      ])
    })
  )
})
