/**
 * What the vision model writes, read leniently but safely, at the wire (the OpenAI fake, the real
 * SDK, api, consumer, PostgreSQL): an answer in a code fence or wrapped in prose, or with malformed
 * `unsure` entries, is read as it is, with one vision call and one ledger row for it, not a
 * corrective retry.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { type Behavior, startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { baseUrl } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"
import { awaitFinished, FAKE_SUGGESTIONS, ledgerOf, sessionRun, sessionsServer } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())

const READ = {
  messages: ["them: Are you free on Saturday?", 'me [9:41 PM]: Maybe: "what" is the {plan}?'],
  matchName: "Sam",
  confidence: 0.9
}
const TRANSCRIPT = [
  ["them", "Are you free on Saturday?", null],
  ["me", 'Maybe: "what" is the {plan}?', "9:41 PM"]
]

// Each session its own screenshot: the per-user OCR cache would otherwise serve the first read again.
let images = 0
const freshImage = () => {
  images++
  return Effect.promise(() => tinyImage("png", 40 + images, 30))
}

/**
 * A session whose screenshot read the fake answers with `vision` (the suggestions: FAKE_SUGGESTIONS,
 * any corrective retry too), to its end: the session, the vision calls made and its ledger rows.
 */
const sessionWith = (vision: Behavior) =>
  Effect.gen(function* () {
    const url = yield* baseUrl
    const user = yield* provisionUser(url, "model-output")
    openai.reset()
    openai.enqueue(vision)
    openai.setFallback({ ...FAKE_SUGGESTIONS, usage: { input: 400, output: 60 } })
    const { id, events } = yield* sessionRun(url, user.headers, yield* freshImage())
    const done = yield* awaitFinished(url, user.headers, id)
    return {
      done,
      events,
      visionCalls: openai.requests.filter((request) => request.image).length,
      ledger: yield* ledgerOf(id)
    }
  })

layer(sessionsServer(openai.url), { timeout: 120_000 })("sessions: the model's output", (it) => {
  it.effect("an answer in a code fence, or with prose before and after it: read with one vision call", () =>
    Effect.gen(function* () {
      const json = JSON.stringify(READ)
      const answers = [
        `\`\`\`json\n${json}\n\`\`\``,
        `Here is the 5" screen's transcript [as asked]:\n\`\`\`json\n${JSON.stringify(READ, null, 2)}\n\`\`\`\nHope it helps!`
      ]
      for (const text of answers) {
        const chunks = [text.slice(0, 12), text.slice(12, 40), text.slice(40)]
        const { done, events, visionCalls, ledger } = yield* sessionWith({
          kind: "ok",
          text,
          chunks,
          usage: { input: 1_500, output: 200 }
        })
        expect(done.status, text).toBe("completed")
        expect(done.transcript.map((message) => [message.sender, message.text, message.time])).toEqual(TRANSCRIPT)
        expect(visionCalls).toBe(1)
        // The lines streamed are the transcript's.
        const lines = events.frames
          .filter((frame) => frame.event === "lines")
          .flatMap((frame) => (frame.data as { messages: ReadonlyArray<{ sender: string; text: string }> }).messages)
        expect(lines.map((line) => [line.sender, line.text])).toEqual(
          TRANSCRIPT.map(([sender, text]) => [sender, text])
        )
        // One call for the read, one for the suggestions: gpt-4o, 1,900 × 2.50 + 260 × 10 micro-units.
        expect(ledger.map((row) => row.feature)).toEqual(["sessions.ocr", "sessions.suggestions"])
        expect(done.costMicros).toBe(7_350)
      }
    })
  )

  it.effect("malformed unsure entries are dropped, the good one kept: one vision call, no corrective retry", () =>
    Effect.gen(function* () {
      const unsure = [{ message: 0, confidence: 7 }, "the second is blurry", { message: -1, confidence: 0.2 }]
      const text = JSON.stringify({ ...READ, unsure: [...unsure, { message: 1, confidence: 0.4 }] })
      const { done, visionCalls, ledger } = yield* sessionWith({ kind: "ok", text })
      expect(done.status).toBe("completed")
      expect(done.transcript.map((message) => [message.text, message.confidence])).toEqual([
        ["Are you free on Saturday?", 0.9],
        ['Maybe: "what" is the {plan}?', 0.4]
      ])
      expect(visionCalls).toBe(1)
      expect(ledger.map((row) => row.feature)).toEqual(["sessions.ocr", "sessions.suggestions"])
    })
  )
})
