/**
 * Providers misbehaving under the sessions pipeline, with an api and a worker process, the chain
 * OpenAI (primary) → Anthropic (fallback) at wire fakes. The vision read always answers; the
 * suggestions' primary is slow, hanging, failing, malformed or cut mid-stream. Each session ends,
 * within a bound, in a fallback success or a clean `failed` with a catalog code: never a job
 * left `processing`.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Behavior, startFakeAnthropic, startFakeOpenAI } from "../fakes/ai/index.ts"
import { tinyImage } from "../fixtures/images.ts"
import { FAKE_SUGGESTIONS, FAKE_VISION, uploadPng, type WireSession } from "../integration/sessions/support.ts"
import { sql } from "../support/database.ts"
import { call, newUser, stack, until, type User } from "./support.ts"

const openai = await startFakeOpenAI()
const anthropic = await startFakeAnthropic()
const processes = stack({
  OPENAI_API_KEY: "test",
  OPENAI_BASE_URL: openai.url,
  ANTHROPIC_API_KEY: "test",
  ANTHROPIC_BASE_URL: anthropic.url,
  AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
  AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
  AI_BREAKER_FAILURES: "1000",
  AI_DAILY_SPEND_CAP_MICROS: "0",
  // A provider that says nothing for 1.5 s is given up on (to the first token, and between tokens).
  AI_TIMEOUT_MS: "1500",
  QUEUE_ATTEMPTS: "2",
  QUEUE_BACKOFF_MS: "0",
  RATE_LIMIT_ENABLED: "false"
})
let api = ""
let alice: User

beforeAll(async () => {
  api = (await processes.api()).url
  await processes.worker()
  alice = await newUser(api, "providers")
})

afterAll(async () => {
  await processes.stop()
  await openai.close()
  await anthropic.close()
})

const SUGGESTION_TEXTS = ["Coffee sounds great", "A walk by the river?", "Surprise me"]
let images = 0

/** A session whose suggestions meet `primary` (OpenAI) then `fallback` (Anthropic); its end state, within 30 s. */
const run = async (primary: Behavior, fallback: Behavior) => {
  openai.reset()
  anthropic.reset()
  openai.enqueue(FAKE_VISION)
  openai.setFallback(primary)
  anthropic.setFallback(fallback)
  // A new image each time: the same one would reuse the earlier OCR result.
  const png = await tinyImage("png", 64 + images++, 48)
  const uploadId = await Effect.runPromise(uploadPng(api, alice.headers, png))
  const created = await call(`${api}/api/v1/sessions`, {
    method: "POST",
    headers: { ...alice.headers, "content-type": "application/json" },
    body: JSON.stringify({ uploadIds: [uploadId] })
  })
  expect(created.status).toBe(202)
  const id = (created.body as { data: WireSession }).data.id
  const session = await until(
    `session ${id} to end`,
    async () => {
      const reply = await call(`${api}/api/v1/sessions/${id}`, { headers: alice.headers })
      const data = (reply.body as { data?: WireSession }).data
      return data !== undefined && data.status !== "queued" && data.status !== "processing" ? data : undefined
    },
    200
  )
  return { session, suggestionRequests: { openai: streamed(openai), anthropic: streamed(anthropic) } }
}

// The suggestion streams (the screenshot read, streamed too, carries the image).
const streamed = (fake: { readonly requests: ReadonlyArray<{ readonly stream: boolean; readonly image: boolean }> }) =>
  fake.requests.filter((request) => request.stream && !request.image).length

const completedByFallback = (session: WireSession) => {
  expect(session).toMatchObject({ status: "completed", errorCode: null })
  expect(session.suggestions.map((suggestion) => suggestion.text)).toEqual(SUGGESTION_TEXTS)
}

describe("resilience: providers slow, hanging, failing, malformed, cut mid-stream", () => {
  it("slow (no first token within AI_TIMEOUT_MS): the fallback writes the suggestions", async () => {
    const { session, suggestionRequests } = await run({ ...FAKE_SUGGESTIONS, delayMs: 5_000 }, FAKE_SUGGESTIONS)
    completedByFallback(session)
    expect(suggestionRequests).toEqual({ openai: 1, anthropic: 1 })
  })

  it("hanging: the fallback writes the suggestions", async () => {
    const { session, suggestionRequests } = await run({ kind: "hang" }, FAKE_SUGGESTIONS)
    completedByFallback(session)
    expect(suggestionRequests).toEqual({ openai: 1, anthropic: 1 })
  })

  it("failing (503): the fallback writes the suggestions", async () => {
    const { session, suggestionRequests } = await run({ kind: "status", status: 503 }, FAKE_SUGGESTIONS)
    completedByFallback(session)
    expect(suggestionRequests.anthropic).toBe(1)
  })

  it("malformed stream: the fallback writes the suggestions", async () => {
    const { session, suggestionRequests } = await run({ kind: "malformed" }, FAKE_SUGGESTIONS)
    completedByFallback(session)
    expect(suggestionRequests.anthropic).toBe(1)
  })

  it("cut mid-stream (text already sent): no fallback, the retry is cut too → failed with a code", async () => {
    const { session, suggestionRequests } = await run(
      { kind: "cut", afterChunks: 1, chunks: ["Half a sugg", "estion"] },
      FAKE_SUGGESTIONS
    )
    expect(session.status).toBe("failed")
    expect(session.errorCode).toBe("AI_UNAVAILABLE")
    expect(session.suggestions).toEqual([])
    // Once text reached the user the stream is never restarted elsewhere: one cut stream per attempt.
    expect(suggestionRequests).toEqual({ openai: 2, anthropic: 0 })
  })

  it("every provider failing: failed with AI_UNAVAILABLE", async () => {
    const { session } = await run({ kind: "status", status: 500 }, { kind: "status", status: 500 })
    expect(session).toMatchObject({ status: "failed", errorCode: "AI_UNAVAILABLE", suggestions: [] })
  })

  it("no job is left queued or processing", async () => {
    expect(
      await Effect.runPromise(
        sql("SELECT id, status FROM sessions WHERE user_id = $1 AND status IN ('queued', 'processing')", [alice.id])
      )
    ).toEqual([])
  })
})
