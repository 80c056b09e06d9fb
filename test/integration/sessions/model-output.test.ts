/**
 * What the vision model writes, read leniently but safely, at the wire (the OpenAI fake, the real
 * SDK, api, consumer, PostgreSQL): an answer in a code fence or wrapped in prose, or with malformed
 * `unsure` entries, is read as it is, with one vision call and one ledger row for it, not a
 * corrective retry; what is saved of it stays within a transcript's limits, and a read cached
 * before those limits is read once more and replaced.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { afterAll } from "vitest"
import { type Behavior, startFakeOpenAI } from "../../fakes/ai/index.ts"
import { Transcript } from "../../../src/core/ocr/transcript.ts"
import { MAX_MESSAGE_CHARS, MAX_SCREENSHOT_MESSAGES } from "../../../src/domain/transcript-limits.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql } from "../../support/database.ts"
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

  it.effect(
    "a 100 KB message is saved cut at the PATCH route's limit, and a read keeps at most its limit of messages",
    () =>
      Effect.gen(function* () {
        const messages = [`them: ${"x".repeat(100_000)}`, ...Array.from({ length: 300 }, (_, i) => `me: line ${i}`)]
        const text = JSON.stringify({ messages, confidence: 0.9 })
        const { done, events } = yield* sessionWith({ kind: "ok", text })
        expect(done.status).toBe("completed")
        const rows = yield* sql<{ length: number }>(
          "SELECT length(text) AS length FROM transcript_messages WHERE session_id = $1 ORDER BY position",
          [done.id]
        )
        expect(rows).toHaveLength(MAX_SCREENSHOT_MESSAGES)
        expect(rows[0]?.length).toBe(MAX_MESSAGE_CHARS)
        const [cached] = yield* sql<{ transcript: unknown }>(
          `SELECT o.transcript FROM ocr_results o JOIN session_images i ON i.content_hash = o.content_hash
         WHERE i.session_id = $1`,
          [done.id]
        )
        expect(Schema.decodeUnknownEither(Transcript)(cached?.transcript)._tag).toBe("Right")
        // No line is published past what the transcript keeps.
        const positions = events.frames
          .filter((frame) => frame.event === "lines")
          .flatMap((frame) => (frame.data as { messages: ReadonlyArray<{ position: number }> }).messages)
          .map((line) => line.position)
        expect(Math.max(...positions)).toBe(MAX_SCREENSHOT_MESSAGES - 1)
      })
  )

  // Before: a cached read the limits refuse (written before them) was read again at every session
  // of the screenshot, a paid vision call each time, the new read never cached (the insert kept the old row).
  it.effect(
    "a cached read over the limits (cached before them) is read again once; the new read is the one cached",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const user = yield* provisionUser(url, "stale-cache")
        const png = yield* freshImage()
        openai.reset()
        openai.setFallback(FAKE_SUGGESTIONS)
        const visionCalls = () => openai.requests.filter((request) => request.image).length
        // `read`: the screenshot is expected to be read (the fake's next answer is the read).
        const run = (read: boolean) =>
          Effect.gen(function* () {
            if (read) openai.enqueue({ kind: "ok", text: JSON.stringify(READ) })
            const { id } = yield* sessionRun(url, user.headers, png)
            const done = yield* awaitFinished(url, user.headers, id)
            expect(done.status).toBe("completed")
            expect(done.transcript.map(({ sender, text, time }) => [sender, text, time])).toEqual(TRANSCRIPT)
          })
        const cached = sql<{ transcript: unknown }>("SELECT transcript FROM ocr_results WHERE user_id = $1", [user.id])

        yield* run(true)
        expect(visionCalls()).toBe(1)
        // What a read cached before the limits holds: a message longer than a transcript keeps.
        yield* sql(
          `UPDATE ocr_results SET transcript = jsonb_set(transcript, '{messages,0,text}', to_jsonb(repeat('x', $2::int)))
         WHERE user_id = $1`,
          [user.id, MAX_MESSAGE_CHARS + 1]
        )
        yield* run(true)
        expect(visionCalls()).toBe(2)
        const [row] = yield* cached
        expect(Schema.decodeUnknownEither(Transcript)(row?.transcript)._tag).toBe("Right")
        yield* run(false)
        expect(visionCalls()).toBe(2)
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
