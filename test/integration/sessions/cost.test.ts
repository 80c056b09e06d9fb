/**
 * A session's cost and timings, returned to its owner: the cost is what the AI ledger holds for the
 * session (the screenshot read, the suggestions, regenerations), the timings one figure per phase.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, FAKE_SUGGESTIONS, FAKE_VISION, getSession, ledgerOf, sessionRun } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

let screenshot: Buffer
beforeAll(async () => {
  screenshot = await chatScreenshotPng()
})

layer(
  testServer({
    db: TestDb(),
    consumer: true,
    config: {
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      RATE_LIMIT_ENABLED: "false"
    }
  }),
  { timeout: 120_000 }
)("sessions: cost and timings", (it) => {
  it.effect(
    "the view carries the ledger's cost for the session (OCR + suggestions, then regenerations) and each phase's time",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ ...FAKE_VISION, usage: { input: 1_500, output: 200 } })
        openai.setFallback({ ...FAKE_SUGGESTIONS, usage: { input: 400, output: 60 } })
        const { id } = yield* sessionRun(url, alice.headers, screenshot)
        const done = yield* awaitFinished(url, alice.headers, id)
        expect(done.status).toBe("completed")

        const ledger = yield* ledgerOf(id)
        expect(ledger.map((row) => row.feature)).toEqual(["sessions.ocr", "sessions.suggestions"])
        const spent = ledger.reduce((sum, row) => sum + row.cost, 0)
        // gpt-4o: (1,500 + 400) × 2.50 + (200 + 60) × 10 micro-units per token
        expect(spent).toBe(7_350)
        expect(done).toMatchObject({ costMicros: spent })
        const timings = done.timings
        expect(Object.keys(timings).sort()).toEqual(["normalise", "ocr", "suggestions", "transcript"])
        for (const ms of Object.values(timings)) expect(ms).toBeGreaterThanOrEqual(0)

        // New lines (the batch's repeats of earlier suggestions would be dropped).
        openai.enqueue({
          kind: "ok",
          text: "Pizza night?\nBoard games at mine\nA gallery walk",
          usage: { input: 400, output: 60 }
        })
        const regenerated = yield* http(`${url}/api/v1/sessions/${id}/suggestions`, {
          method: "POST",
          headers: { ...alice.headers, "content-type": "application/json" },
          body: "{}"
        })
        expect(regenerated.status).toBe(200)
        const after = yield* ledgerOf(id)
        expect(after).toHaveLength(3)
        const again = ((yield* getSession(url, alice.headers, id)).body as { data: { costMicros: number } }).data
        expect(again.costMicros).toBe(after.reduce((sum, row) => sum + row.cost, 0))
        expect(again.costMicros).toBe(7_350 + 1_600)
      })
  )
})
