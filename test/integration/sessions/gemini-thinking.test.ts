/**
 * A session on Gemini (the chain's default primary) asks for no hidden thinking, neither for the
 * screenshot read nor for the suggestions, and nor do openers: Gemini 2.5 thinks unless told not
 * to, before its first visible token and within the token cap. The read uses the compact
 * transcript format.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { startFakeGemini } from "../../fakes/ai/index.ts"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { generateJson } from "../openers/support.ts"
import { awaitFinished, FAKE_SUGGESTIONS, sessionRun } from "./support.ts"

const gemini = await startFakeGemini()
afterAll(() => gemini.close())
beforeEach(() => gemini.reset())

let screenshot: Buffer
beforeAll(async () => {
  screenshot = await chatScreenshotPng()
})

/** What an `ocr-v3` read writes: a line per message, no times, no per-message confidence, no name or app when not shown. */
const COMPACT_VISION = {
  kind: "ok" as const,
  text: JSON.stringify({
    messages: ["them: Are you free on Saturday?", "me: I might be, what's the plan?"],
    confidence: 0.95
  })
}

layer(
  testServer({
    db: TestDb(),
    consumer: true,
    config: {
      GEMINI_API_KEY: "test",
      GEMINI_BASE_URL: gemini.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gemini-flash",
      AI_PROVIDER_STRATEGY_FALLBACKS: "gemini-flash",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      RATE_LIMIT_ENABLED: "false"
    }
  }),
  { timeout: 120_000 }
)("sessions and openers on Gemini: thinking off", (it) => {
  it.effect("the vision read and the suggestions stream both send thinkingBudget 0", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      gemini.enqueue(COMPACT_VISION)
      gemini.setFallback(FAKE_SUGGESTIONS)
      const { id } = yield* sessionRun(url, alice.headers, screenshot)
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done.status).toBe("completed")
      expect(done).toMatchObject({
        transcript: [
          { sender: "them", text: "Are you free on Saturday?", time: null, confidence: 0.95 },
          { sender: "me", text: "I might be, what's the plan?", time: null, confidence: 0.95 }
        ]
      })
      const requests = gemini.requests
      // The screenshot read, then the suggestions: both streamed.
      expect(requests.map((request) => [request.image, request.stream])).toEqual([
        [true, true],
        [false, true]
      ])
      for (const request of requests) {
        expect(request.body).toMatchObject({ generationConfig: { thinkingConfig: { thinkingBudget: 0 } } })
      }
    })
  )

  it.effect("openers send thinkingBudget 0", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      gemini.enqueue({ kind: "ok", text: "Coffee or tea?\n" })
      const res = yield* generateJson(url, alice.headers, { count: 1, profile: { name: "Sam" } })
      expect(res.status).toBe(200)
      expect(gemini.requests).toHaveLength(1)
      expect(gemini.requests[0]?.body).toMatchObject({
        generationConfig: { thinkingConfig: { thinkingBudget: 0 } }
      })
    })
  )
})
