/**
 * `POST /api/v1/magic-openers/generate` on the real server, its AI chain pointed at wire-level
 * fakes of OpenAI (primary) and Anthropic (fallback): the SSE event model and the JSON mode, line
 * parsing, saving, disconnects, fallback before the first delta, failure after it, blocked lines,
 * minors refused before any model call, the ledger, validation, profile screenshots.
 */
import { afterAll, beforeEach, describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb, sql } from "../../support/database.ts"
import { failure, http, issuePaths } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { startFakeAnthropic, startFakeOpenAI } from "../../fakes/ai/index.ts"
import {
  abortSeen,
  aiCallRows,
  doneOpeners,
  eventually,
  expectedOpener,
  streamOf,
  generateJson,
  generateSse,
  newMatch,
  openAiPrompt,
  openerRows,
  type WireOpener
} from "./support.ts"

const openai = await startFakeOpenAI()
const anthropic = await startFakeAnthropic()
afterAll(async () => {
  await Promise.all([openai.close(), anthropic.close()])
})
beforeEach(() => {
  openai.reset()
  anthropic.reset()
})

const TIMEOUT_MS = 1_500

const Server = testServer({
  db: TestDb(),
  config: {
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    ANTHROPIC_API_KEY: "test",
    ANTHROPIC_BASE_URL: anthropic.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
    AI_TIMEOUT_MS: String(TIMEOUT_MS),
    // Failures of one test must not open a circuit for the next.
    AI_BREAKER_FAILURES: "1000",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    OPENERS_DAILY_LIMIT: "10000"
  }
})

const MINOR = failure(
  "SAFETY_BLOCKED",
  "This profile states or implies someone under 18: Wingmate does not help with that",
  { reason: "minor" }
)
const BATCH_ID = expect.stringMatching(/^[0-9a-f]{32}$/)
/** gpt-4o list prices: 1000 tokens in at 2.5 $/M + 100 out at 10 $/M = 3500 micro-units. */
const USAGE = { input: 1_000, output: 100 }
const COST = 3_500

const delta = (index: number, text: string) => ({ event: "delta", data: { index, text } })
const blocked = (index: number, reason: string) => ({ event: "blocked", data: { index, reason } })
const done = (index: number, opener: unknown) => ({ event: "done", data: { index, opener } })
const finalMeta = (meta: Record<string, unknown>) => ({
  batchId: BATCH_ID,
  provider: "gpt-4o",
  model: "gpt-4o",
  local: false,
  usage: { inputTokens: USAGE.input, outputTokens: USAGE.output },
  costMicros: COST,
  blocked: 0,
  ...meta
})
/** The terminal event: the meta and the openers saved (asserted in full where it matters). */
const final = (meta: Record<string, unknown>, openers: unknown = expect.any(Array)) => ({
  event: "final",
  data: { ...finalMeta(meta), openers }
})

/** The model's answer, exactly as these deltas. */
const answer = (chunks: ReadonlyArray<string>, extra: { readonly chunkDelayMs?: number } = {}) =>
  openai.enqueue({ kind: "ok", text: chunks.join(""), chunks, usage: USAGE, ...extra })

layer(Server, { timeout: 60_000 })("magic openers: generate", (it) => {
  describe("the event stream", () => {
    it.effect("deltas carry their index and text, done the saved opener, final the usage and cost", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Climber", interests: ["climbing"] })
        answer(["Hey Sam, climb", "ing buddy?\nSecond", " one here?\n"])

        const res = yield* generateSse(url, alice.headers, { matchId: match.id, count: 2 })
        expect(res.status).toBe(200)
        expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/)
        // A private stream: never stored by a cache (no-store implies no-cache).
        expect(res.headers.get("cache-control")).toBe("no-store")
        expect(res.headers.get("x-accel-buffering")).toBe("no")
        const first = expectedOpener({ matchId: match.id, position: 0, text: "Hey Sam, climbing buddy?" })
        const second = expectedOpener({ matchId: match.id, position: 1, text: "Second one here?" })
        expect(res.events).toEqual([
          delta(0, "Hey Sam, climb"),
          delta(0, "ing buddy?"),
          done(0, first),
          delta(1, "Second"),
          delta(1, " one here?"),
          done(1, second),
          final({}, [first, second])
        ])
        // The framing itself: `retry:` first, then `id: <batchId>:<n>\nevent: X\ndata: JSON\n\n`, nothing else.
        expect(res.raw).toBe(streamOf(res))
        const finalBatch = (res.events.at(-1)?.data as { batchId: string }).batchId
        expect(res.ids).toEqual(res.events.map((_, n) => `${finalBatch}:${n + 1}`))

        const [o0, o1] = doneOpeners(res.events)
        const batchId = (res.events.at(-1)?.data as { batchId: string }).batchId
        expect(o0?.batchId).toBe(batchId)
        expect(o1?.batchId).toBe(batchId)
        expect(yield* openerRows(alice.id)).toEqual([
          {
            id: o0?.id,
            user_id: alice.id,
            match_id: match.id,
            batch_id: batchId,
            position: 0,
            text: "Hey Sam, climbing buddy?",
            tone: "playful",
            language: "en",
            prompt_version: "openers-v1",
            provider: "gpt-4o",
            model: "gpt-4o",
            feedback: null,
            dislike_reason: null
          },
          {
            id: o1?.id,
            user_id: alice.id,
            match_id: match.id,
            batch_id: batchId,
            position: 1,
            text: "Second one here?",
            tone: "playful",
            language: "en",
            prompt_version: "openers-v1",
            provider: "gpt-4o",
            model: "gpt-4o",
            feedback: null,
            dislike_reason: null
          }
        ])

        // What the model was asked: one streamed request, the profile quoted as data.
        expect(openai.requests).toHaveLength(1)
        const request = openai.requests[0]
        expect(request?.stream).toBe(true)
        expect(request?.body).toMatchObject({ model: "gpt-4o", stream: true })
        const prompt = openAiPrompt(request?.body)
        expect(prompt).toContain('Name: "Sam"')
        expect(prompt).toContain('Bio: "Climber"')
        expect(prompt).toContain('Interests: "climbing"')
        expect(prompt).toContain("Now write the 2 openers, one per line.")
        expect(JSON.stringify(request?.body)).toContain("Write exactly 2 different openers")
        expect(anthropic.requests).toHaveLength(0)
      })
    )

    it.effect("JSON mode (no Accept header) answers the same openers in the envelope", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        answer(["Hey Sam, climb", "ing buddy?\nSecond", " one here?\n"])

        const res = yield* generateJson(url, alice.headers, { matchId: match.id, count: 2 })
        expect(res.status).toBe(200)
        expect(res.headers.get("content-type")).toMatch(/^application\/json/)
        expect(res.body).toEqual({
          success: true,
          data: {
            openers: [
              expectedOpener({ matchId: match.id, position: 0, text: "Hey Sam, climbing buddy?" }),
              expectedOpener({ matchId: match.id, position: 1, text: "Second one here?" })
            ],
            meta: finalMeta({})
          }
        })
        const data = (res.body as { data: { openers: Array<WireOpener>; meta: { batchId: string } } }).data
        const rows = yield* openerRows(alice.id)
        expect(rows.map((row) => [row["id"], row["batch_id"], row["text"]])).toEqual(
          data.openers.map((opener) => [opener.id, data.meta.batchId, opener.text])
        )
        // The history lists exactly what the generation answered.
        const history = yield* http(`${url}/api/v1/magic-openers?matchId=${match.id}`, { headers: alice.headers })
        expect(history.body).toEqual({
          success: true,
          data: { items: [...data.openers].reverse(), nextCursor: null }
        })
      })
    )

    it.effect("numbering, bullets, quotes and blank lines are cleaned; lines beyond count are dropped", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        answer(['1. "Coffee or tea?"\n\n- Beach or mountains?\n', '3.\n"Dune" or "Arrival"?\n4. Fourth?\n'])

        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 3 })
        expect(res.events).toEqual([
          delta(0, '1. "Coffee or tea?"'),
          done(0, expectedOpener({ matchId: null, position: 0, text: "Coffee or tea?" })),
          delta(1, "- Beach or mountains?"),
          done(1, expectedOpener({ matchId: null, position: 1, text: "Beach or mountains?" })),
          // A bare number is not an opener; the quotes of the next line belong to it.
          delta(2, "3."),
          delta(2, '"Dune" or "Arrival"?'),
          done(2, expectedOpener({ matchId: null, position: 2, text: '"Dune" or "Arrival"?' })),
          final({})
        ])
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual([
          "Coffee or tea?",
          "Beach or mountains?",
          '"Dune" or "Arrival"?'
        ])
      })
    )

    it.effect("a last line without a newline is kept; tone and language are the user's defaults", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const patched = yield* http(`${url}/api/v1/users/me`, {
          method: "PATCH",
          headers: { "content-type": "application/json", ...alice.headers },
          body: JSON.stringify({ defaultTone: "witty", preferredLanguage: "fr-CA" })
        })
        expect(patched.status).toBe(200)
        answer(["Salut Sam, escalade ou café ?"])

        const res = yield* generateSse(url, alice.headers, { profile: { bio: "Grimpeuse" }, count: 1 })
        expect(res.events).toEqual([
          delta(0, "Salut Sam, escalade ou café ?"),
          done(
            0,
            expectedOpener({
              matchId: null,
              position: 0,
              text: "Salut Sam, escalade ou café ?",
              tone: "witty",
              language: "fr-CA"
            })
          ),
          final({})
        ])
        const system = JSON.stringify(openai.requests[0]?.body)
        expect(system).toContain("Tone: witty")
        expect(system).toContain("BCP 47 tag fr-CA")

        // Asked for explicitly, tone and language win over the defaults.
        answer(["Bold one?\n"])
        const explicit = yield* generateJson(url, alice.headers, {
          profile: { name: "Sam" },
          count: 1,
          tone: "bold",
          language: "en"
        })
        expect(explicit.body).toMatchObject({
          data: { openers: [{ tone: "bold", language: "en", text: "Bold one?" }] }
        })
      })
    )
  })

  describe("disconnects, fallback and failures", () => {
    it.effect("a client that disconnects mid-stream stops the generation; only done openers are saved", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        answer(["First line?\n", "Second li", "ne never finished?\n"], { chunkDelayMs: 700 })

        const res = yield* generateSse(url, alice.headers, { matchId: match.id, count: 2 }, (event) => {
          return event.event === "done"
        })
        expect(res.events).toEqual([
          delta(0, "First line?"),
          done(0, expectedOpener({ matchId: match.id, position: 0, text: "First line?" }))
        ])
        // The fake sees its client go away (here once its second delta is read: see the next test).
        const aborted = yield* Effect.promise(() => openai.nextClientAbort())
        expect(aborted.stream).toBe(true)
        expect(openai.abortedRequests).toBe(1)

        // The attempt is in the ledger as cancelled (written by the stream's finalizer)…
        const calls = yield* eventually(aiCallRows(alice.id), (rows) => rows.length > 0)
        expect(calls).toEqual([
          expect.objectContaining({ feature: "openers", provider: "gpt-4o", outcome: "cancelled" })
        ])
        // …and only the complete opener was saved.
        const rows = yield* openerRows(alice.id)
        expect(rows.map((row) => [row["position"], row["text"]])).toEqual([[0, "First line?"]])
        expect(anthropic.requests).toHaveLength(0)
      })
    )

    // KNOWN BUG (reported, not fixed; src/core/ai/sdk-stream.ts via Stream.fromAsyncIterable): closing
    // the provider's stream awaits the SDK iterator's return(), which waits for the pending next(),
    // i.e. for the provider's next token, before the AbortController is aborted. A provider that
    // stalls is never aborted and keeps generating (and billing) after the client left.
    it.effect("a disconnect aborts the provider's request at once, before the model sends more", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        answer(["First line?\n", "Second line?\n"], { chunkDelayMs: 2_000 })
        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 2 }, (event) => {
          return event.event === "done"
        })
        expect(res.events.map((event) => event.event)).toEqual(["delta", "done"])
        // Aborted at once, the fake never writes its second delta; otherwise it finishes its answer and
        // sees no abort at all (the bound only turns that into a failure instead of a hang).
        expect(yield* abortSeen(openai)).toBe(true)
      })
    )

    it.effect("the primary failing before its first delta (500) falls back: openers saved as claude-sonnet", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ kind: "status", status: 500 })
        anthropic.enqueue({ kind: "ok", text: "", chunks: ["From Claude?\n", "Also Claude?\n"], usage: USAGE })

        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 2 })
        const claude = { provider: "claude-sonnet", model: "claude-sonnet-4-6" }
        expect(res.events).toEqual([
          delta(0, "From Claude?"),
          done(0, expectedOpener({ matchId: null, position: 0, text: "From Claude?", ...claude })),
          delta(1, "Also Claude?"),
          done(1, expectedOpener({ matchId: null, position: 1, text: "Also Claude?", ...claude })),
          // claude-sonnet list prices: 1000 in at 3 $/M + 100 out at 15 $/M.
          final({ ...claude, costMicros: 4_500 })
        ])
        expect((yield* openerRows(alice.id)).map((row) => [row["provider"], row["model"]])).toEqual([
          ["claude-sonnet", "claude-sonnet-4-6"],
          ["claude-sonnet", "claude-sonnet-4-6"]
        ])
        expect(openai.requests).toHaveLength(1)
        expect(anthropic.requests).toHaveLength(1)
        // The fallback got the same prompt.
        expect(JSON.stringify(anthropic.requests[0]?.body)).toContain('Name: \\"Sam\\"')
        expect(yield* aiCallRows(alice.id)).toEqual([
          expect.objectContaining({ provider: "gpt-4o", outcome: "error", error_kind: "server" }),
          expect.objectContaining({ provider: "claude-sonnet", outcome: "ok", input_tokens: 1_000, output_tokens: 100 })
        ])
      })
    )

    it.effect("the primary hanging past AI_TIMEOUT_MS falls back too, and its request is aborted", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ kind: "hang" })
        anthropic.enqueue({ kind: "ok", text: "", chunks: ["Patience pays?\n"], usage: USAGE })

        const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
        expect(res.status).toBe(200)
        expect(res.body).toMatchObject({
          data: {
            openers: [{ text: "Patience pays?", provider: "claude-sonnet", model: "claude-sonnet-4-6" }],
            meta: { provider: "claude-sonnet", model: "claude-sonnet-4-6" }
          }
        })
        const aborted = yield* Effect.promise(() => openai.nextClientAbort())
        expect(aborted.stream).toBe(true)
        expect(yield* aiCallRows(alice.id)).toEqual([
          expect.objectContaining({ provider: "gpt-4o", outcome: "timeout" }),
          expect.objectContaining({ provider: "claude-sonnet", outcome: "ok" })
        ])
      })
    )

    it.effect("a stream cut after its first delta: a `failed` event, no fallback, the cut line not saved", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        openai.enqueue({ kind: "cut", afterChunks: 1, chunks: ["Complete first line?\nHalf a sec", "ond line?\n"] })

        const res = yield* generateSse(url, alice.headers, { matchId: match.id, count: 2 })
        expect(res.status).toBe(200)
        expect(res.events).toEqual([
          delta(0, "Complete first line?"),
          done(0, expectedOpener({ matchId: match.id, position: 0, text: "Complete first line?" })),
          delta(1, "Half a sec"),
          {
            event: "failed",
            data: {
              code: "AI_UNAVAILABLE",
              message: "The AI provider stopped mid-answer; try again",
              // The same details as the REST envelope's for this failure.
              details: { provider: "gpt-4o", kind: "network" },
              openers: [expect.objectContaining({ position: 0 })]
            }
          }
        ])
        expect(res.raw).toBe(streamOf(res))
        expect(anthropic.requests).toHaveLength(0)
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual(["Complete first line?"])
        expect(yield* aiCallRows(alice.id)).toEqual([
          expect.objectContaining({ feature: "openers", provider: "gpt-4o", outcome: "error" })
        ])
      })
    )

    it.effect("a stream that stalls after its first delta times out: a `failed` event, the cut line not saved", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        answer(["Quick first?\n", "Slow second?\n"], { chunkDelayMs: TIMEOUT_MS + 1_000 })

        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 2 })
        expect(res.events).toEqual([
          delta(0, "Quick first?"),
          done(0, expectedOpener({ matchId: null, position: 0, text: "Quick first?" })),
          {
            event: "failed",
            data: {
              code: "AI_UNAVAILABLE",
              message: "The AI provider stopped mid-answer; try again",
              details: { provider: "gpt-4o", kind: "timeout" },
              openers: [expect.objectContaining({ position: 0 })]
            }
          }
        ])
        expect(anthropic.requests).toHaveLength(0)
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual(["Quick first?"])
        expect(yield* aiCallRows(alice.id)).toEqual([
          expect.objectContaining({ provider: "gpt-4o", outcome: "timeout", error_kind: "timeout" })
        ])
      })
    )

    // KNOWN BUG (reported, not fixed): the same cause as above. The between-token timeout fires, but
    // closing the stream waits for the provider's next token, so the error event comes only then and
    // the provider's request is never aborted (a provider that hangs mid-answer hangs the response).
    it.effect("a stream that stalls after its first delta: the provider's request is aborted", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        answer(["Quick first?\n", "Slow second?\n"], { chunkDelayMs: TIMEOUT_MS + 1_000 })
        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 2 })
        expect(res.events.map((event) => event.event)).toEqual(["delta", "done", "failed"])
        expect(yield* abortSeen(openai)).toBe(true)
      })
    )

    it.effect("every provider down: 503 AI_UNAVAILABLE listing the attempts (JSON), nothing saved", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ kind: "status", status: 500 })
        anthropic.enqueue({ kind: "status", status: 503 })

        const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
        expect(res.status).toBe(503)
        expect(res.body).toEqual(
          failure("AI_UNAVAILABLE", "No AI provider could answer; try again shortly", {
            attempts: [
              { provider: "gpt-4o", model: "gpt-4o", outcome: "error", kind: "server", status: 500 },
              { provider: "claude-sonnet", model: "claude-sonnet-4-6", outcome: "error", kind: "server", status: 503 }
            ]
          })
        )
        expect(yield* openerRows(alice.id)).toEqual([])
      })
    )

    it.effect("every provider down with SSE: a `failed` event AI_UNAVAILABLE and nothing else", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ kind: "status", status: 500 })
        anthropic.enqueue({ kind: "status", status: 503 })

        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
        expect(res.events).toEqual([
          {
            event: "failed",
            data: {
              code: "AI_UNAVAILABLE",
              message: "No AI provider could answer; try again shortly",
              details: {
                attempts: [
                  expect.objectContaining({ provider: "gpt-4o", outcome: "error", status: 500 }),
                  expect.objectContaining({ provider: "claude-sonnet", outcome: "error", status: 503 })
                ]
              },
              openers: []
            }
          }
        ])
        expect(yield* openerRows(alice.id)).toEqual([])
      })
    )

    it.effect("a request the provider calls invalid (400) stops the chain: 422 AI_REQUEST_REJECTED", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue({ kind: "status", status: 400, message: "Invalid prompt" })

        const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
        expect(res.status).toBe(422)
        expect(res.body).toEqual(
          failure("AI_REQUEST_REJECTED", "The AI provider refused this request", { provider: "gpt-4o" })
        )
        expect(anthropic.requests).toHaveLength(0)
      })
    )
  })

  describe("lines that are not kept", () => {
    it.effect("the match's previous openers are in the next prompt; a repeat of one is blocked as duplicate", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        answer(["Do you climb on weekends?\n", "Best ramen in town?\n"])
        const first = yield* generateJson(url, alice.headers, { matchId: match.id, count: 2 })
        expect(first.status).toBe(200)

        answer(["do you CLIMB on  weekends!!\n", "Fresh one here?\n"])
        const res = yield* generateSse(url, alice.headers, { matchId: match.id, count: 2 })
        expect(res.events).toEqual([
          delta(0, "do you CLIMB on  weekends!!"),
          blocked(0, "duplicate"),
          delta(1, "Fresh one here?"),
          done(1, expectedOpener({ matchId: match.id, position: 1, text: "Fresh one here?" })),
          final({ blocked: 1 })
        ])
        const prompt = openAiPrompt(openai.requests[1]?.body)
        expect(prompt).toContain("Openers already sent for this match (never repeat or paraphrase them):\n- ")
        expect(prompt).toContain('- "Do you climb on weekends?"')
        expect(prompt).toContain('- "Best ramen in town?"')
        // The first prompt had no such section.
        expect(openAiPrompt(openai.requests[0]?.body)).not.toContain("Openers already sent")
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual([
          "Do you climb on weekends?",
          "Best ramen in town?",
          "Fresh one here?"
        ])
      })
    )

    it.effect("another match's openers are neither in the prompt nor duplicates", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const sam = yield* newMatch(url, alice.headers, { name: "Sam" })
        const kim = yield* newMatch(url, alice.headers, { name: "Kim" })
        answer(["Coffee or tea?\n"])
        yield* generateJson(url, alice.headers, { matchId: sam.id, count: 1 })

        answer(["Coffee or tea?\n"])
        const res = yield* generateSse(url, alice.headers, { matchId: kim.id, count: 1 })
        expect(res.events).toEqual([
          delta(0, "Coffee or tea?"),
          done(0, expectedOpener({ matchId: kim.id, position: 0, text: "Coffee or tea?" })),
          final({})
        ])
        expect(openAiPrompt(openai.requests[1]?.body)).not.toContain("Openers already sent")
      })
    )

    it.effect("unsafe, too long and same-batch repeated lines are blocked and never saved", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const long = `${"So ".repeat(100)}what?`
        answer(["Send nudes?\n", `${long}\n`, "Coffee or tea?\n", "COFFEE, or tea!\n", "Last one?\n"])

        const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 5 })
        expect(res.events).toEqual([
          delta(0, "Send nudes?"),
          blocked(0, "unsafe"),
          delta(1, long),
          blocked(1, "too_long"),
          delta(2, "Coffee or tea?"),
          done(2, expectedOpener({ matchId: null, position: 2, text: "Coffee or tea?" })),
          delta(3, "COFFEE, or tea!"),
          blocked(3, "duplicate"),
          delta(4, "Last one?"),
          done(4, expectedOpener({ matchId: null, position: 4, text: "Last one?" })),
          final({ blocked: 3 })
        ])
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual(["Coffee or tea?", "Last one?"])

        // The JSON mode counts them in meta.blocked and answers only the kept ones.
        answer(["You look fat?\n", "Fine one?\n"])
        const json = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 2 })
        expect(json.body).toMatchObject({
          data: { openers: [{ position: 1, text: "Fine one?" }], meta: { blocked: 1 } }
        })
      })
    )
  })

  describe("minors are refused before any model call", () => {
    it.effect("an inline profile saying 16 yo: 422 SAFETY_BLOCKED, in both modes; the fake got no request", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const payload = { profile: { name: "Sam", bio: "16 yo, love skating" }, count: 2 }
        const json = yield* generateJson(url, alice.headers, payload)
        expect(json.status).toBe(422)
        expect(json.body).toEqual(MINOR)
        const sse = yield* generateSse(url, alice.headers, payload)
        expect(sse.status).toBe(422)
        expect(sse.body).toEqual(MINOR)
        const interests = yield* generateJson(url, alice.headers, { profile: { interests: ["teen stuff"] } })
        expect(interests.status).toBe(422)
        expect(openai.requests).toHaveLength(0)
        expect(anthropic.requests).toHaveLength(0)
        expect(yield* openerRows(alice.id)).toEqual([])
        expect(yield* aiCallRows(alice.id)).toEqual([])
      })
    )

    it.effect("a saved match whose text or read screenshot says a minor is refused the same way", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        // Rows the API would refuse: written as an older version or a screenshot reading would leave them.
        const bio = yield* newMatch(url, alice.headers, { name: "Sam" })
        yield* sql("UPDATE matches SET bio = 'I am 15' WHERE id = $1", [bio.id])
        const extracted = yield* newMatch(url, alice.headers, { name: "Kim" })
        yield* sql("UPDATE matches SET extracted_profile = $1 WHERE id = $2", [
          JSON.stringify({ name: "Kim", age: 16, bio: null, prompts: [], interests: [] }),
          extracted.id
        ])
        for (const matchId of [bio.id, extracted.id]) {
          const res = yield* generateSse(url, alice.headers, { matchId })
          expect(res.status).toBe(422)
          expect(res.body).toEqual(MINOR)
        }
        expect(openai.requests).toHaveLength(0)
      })
    )
  })

  describe("the ledger", () => {
    it.effect("a generation leaves one ai_calls row: feature openers, the user, the fake's tokens, outcome ok", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        answer(["One?\n", "Two?\n"])
        const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 2 })
        expect(res.status).toBe(200)
        expect(yield* aiCallRows(alice.id)).toEqual([
          {
            user_id: alice.id,
            feature: "openers",
            provider: "gpt-4o",
            model: "gpt-4o",
            input_tokens: 1_000,
            output_tokens: 100,
            cost_micros: COST,
            outcome: "ok",
            error_kind: null
          }
        ])
        expect(res.body).toMatchObject({
          data: { meta: { usage: { inputTokens: 1_000, outputTokens: 100 }, costMicros: COST } }
        })
        expect(yield* aiCallRows(bob.id)).toEqual([])
      })
    )
  })

  describe("validation and ownership", () => {
    it.effect("count outside 1..5, no matchId nor profile, an unknown tone, unknown fields: 400 naming them", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const cases: ReadonlyArray<readonly [unknown, ReadonlyArray<string>]> = [
          [{ profile: { name: "Sam" }, count: 0 }, ["count"]],
          [{ profile: { name: "Sam" }, count: 6 }, ["count"]],
          [{ profile: { name: "Sam" }, count: 2.5 }, ["count"]],
          [{ profile: { name: "Sam" }, tone: "creepy" }, ["tone"]],
          [{ profile: { name: "Sam" }, language: "english please" }, ["language"]],
          [{ profile: { name: "Sam" }, userId: "someone" }, ["userId"]],
          [{ matchId: "../etc" }, ["matchId"]]
        ]
        for (const [payload, paths] of cases) {
          const res = yield* generateJson(url, alice.headers, payload)
          expect({
            payload,
            status: res.status,
            code: (res.body as { error?: { code?: string } }).error?.code
          }).toEqual({ payload, status: 400, code: "VALIDATION_ERROR" })
          expect({ payload, paths: issuePaths(res.body) }).toEqual({ payload, paths })
        }
        // A nested field is named by its path (the union with undefined adds an issue on `profile` itself).
        const nested = yield* generateJson(url, alice.headers, { profile: { bio: "" } })
        expect(nested.status).toBe(400)
        expect(issuePaths(nested.body)).toContain("profile.bio")
        const neither = yield* generateJson(url, alice.headers, { count: 2 })
        expect(neither.status).toBe(400)
        expect(neither.body).toEqual({
          success: false,
          error: {
            code: "VALIDATION_ERROR",
            message: "The request is invalid: see details.issues",
            details: { issues: [{ path: "matchId", message: "Give a matchId or an inline profile" }] }
          }
        })
        const tone = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, tone: "creepy" })
        expect(tone.body).toMatchObject({
          error: {
            details: {
              issues: [
                {
                  path: "tone",
                  message: expect.stringContaining("Expected one of playful, flirty, witty, sincere, bold")
                }
              ]
            }
          }
        })
        expect(openai.requests).toHaveLength(0)
      })
    )

    it.effect("another user's match answers exactly like a missing one, before any model call", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        const theirs = yield* generateJson(url, bob.headers, { matchId: match.id })
        const missing = yield* generateJson(url, bob.headers, { matchId: "cmissing0000000000000000" })
        const theirsSse = yield* generateSse(url, bob.headers, { matchId: match.id })
        expect(theirs.status).toBe(404)
        expect(theirs.body).toEqual(failure("NOT_FOUND", "Match not found"))
        expect(missing.status).toBe(404)
        expect(missing.body).toEqual(theirs.body)
        expect(theirsSse.status).toBe(404)
        expect(theirsSse.body).toEqual(theirs.body)
        expect(openai.requests).toHaveLength(0)
        expect(yield* openerRows(bob.id)).toEqual([])
      })
    )

    it.effect("without a token: 401", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const res = yield* generateJson(url, {}, { profile: { name: "Sam" } })
        expect(res.status).toBe(401)
        expect(res.body).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } })
        expect(openai.requests).toHaveLength(0)
      })
    )
  })

  describe("profile screenshots", () => {
    const withScreenshot = (url: string, headers: Record<string, string>) =>
      Effect.gen(function* () {
        const bytes = yield* Effect.promise(() => tinyImage("png", 390, 844))
        const ticket = yield* ticketFor(url, headers, bytes, "image/png", "profile")
        expect((yield* sendBytes(ticket, bytes)).status).toBe(200)
        return yield* newMatch(url, headers, { name: "Sam", profileUploadId: ticket.uploadId })
      })

    it.effect("read once by the vision model before the first generation; what it read is in the prompt", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* withScreenshot(url, alice.headers)
        const reading = {
          name: "Sam",
          age: 29,
          bio: "Bouldering and ramen",
          prompts: ["Best trip: Lisbon"],
          interests: ["climbing", "jazz"]
        }
        openai.enqueue({ kind: "ok", text: JSON.stringify(reading) })
        answer(["Lisbon or Porto?\n"])

        const res = yield* generateSse(url, alice.headers, { matchId: match.id, count: 1 })
        expect(res.events.map((event) => event.event)).toEqual(["delta", "done", "final"])
        expect(openai.requests.map((request) => request.stream)).toEqual([false, true])
        // The screenshot went to the vision model as an image.
        expect(JSON.stringify(openai.requests[0]?.body)).toContain("data:image/webp;base64,")
        const prompt = openAiPrompt(openai.requests[1]?.body)
        expect(prompt).toContain('Bio: "Bouldering and ramen"')
        expect(prompt).toContain('Interests: "climbing", "jazz"')
        expect(prompt).toContain('Profile prompts: "Best trip: Lisbon"')

        const stored = yield* http(`${url}/api/v1/matches/${match.id}`, { headers: alice.headers })
        expect(stored.body).toMatchObject({ data: { extractedProfile: reading } })

        // The second generation does not read it again.
        answer(["Jazz bar this week?\n"])
        yield* generateJson(url, alice.headers, { matchId: match.id, count: 1 })
        expect(openai.requests.map((request) => request.stream)).toEqual([false, true, true])
        expect((yield* aiCallRows(alice.id)).map((row) => row["feature"])).toEqual([
          "openers.profile",
          "openers",
          "openers"
        ])
      })
    )

    it.effect("a screenshot read as someone under 18: 422 SAFETY_BLOCKED, no opener requested", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* withScreenshot(url, alice.headers)
        openai.enqueue({
          kind: "ok",
          text: JSON.stringify({ name: "Sam", age: 16, bio: null, prompts: [], interests: [] })
        })
        const res = yield* generateSse(url, alice.headers, { matchId: match.id })
        expect(res.status).toBe(422)
        expect(res.body).toEqual(MINOR)
        expect(openai.requests.map((request) => request.stream)).toEqual([false])
        expect(yield* openerRows(alice.id)).toEqual([])
      })
    )
  })
})
