/**
 * Quotas on opener generation: `OPENERS_DAILY_LIMIT` generations per user and UTC day, and the
 * AI spend cap (`AI_DAILY_SPEND_CAP_MICROS`: the ledger plus what calls in flight reserved); both
 * answer 429 QUOTA_EXCEEDED with `Retry-After` before any model call, and both hold when many
 * requests arrive at once (admission is a reservation, not a count read before acting).
 */
import { afterAll, beforeEach, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb, sql } from "../../support/database.ts"
import { failure, type HttpResult } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { generateJson, generateSse, newMatch, openerRows, type SseResult } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(async () => {
  await openai.close()
})
beforeEach(() => {
  openai.reset()
})

const serverWith = (config: Record<string, string>) =>
  testServer({
    db: TestDb(),
    config: {
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
      AI_TIMEOUT_MS: "1500",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      OPENERS_DAILY_LIMIT: "10000",
      ...config
    }
  })

const answer = (...lines: ReadonlyArray<string>) =>
  openai.enqueue({ kind: "ok", text: lines.join(""), chunks: lines, usage: { input: 100, output: 10 } })

/** Seconds until the next UTC midnight, as the server computes them (give or take the request's duration). */
const secondsToMidnight = () => {
  const now = Date.now()
  const midnight = new Date(now)
  midnight.setUTCHours(24, 0, 0, 0)
  return Math.ceil((midnight.getTime() - now) / 1000)
}

/** `Retry-After` is a positive integer of seconds, equal to `details.retryAfterSeconds`, at most until midnight UTC. */
const expectRetryAfter = (res: HttpResult | SseResult, body: unknown) => {
  const header = res.headers.get("retry-after")
  expect(header).toMatch(/^[1-9][0-9]*$/)
  const seconds = Number(header)
  expect(seconds).toBeLessThanOrEqual(86_400)
  // Until the next UTC midnight, give or take the request's duration (and a midnight in between).
  const drift = Math.abs(seconds - secondsToMidnight())
  expect(Math.min(drift, 86_400 - drift)).toBeLessThanOrEqual(5)
  expect((body as { error: { details: { retryAfterSeconds: number } } }).error.details.retryAfterSeconds).toBe(seconds)
}

layer(serverWith({ OPENERS_DAILY_LIMIT: "1" }), { timeout: 60_000 })("opener quota: daily generations", (it) => {
  it.effect("the second generation of the day: 429 QUOTA_EXCEEDED with Retry-After, in both modes, no model call", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      answer("Coffee or tea?\n")
      const first = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(first.status).toBe(200)
      expect(first.events.map((event) => event.event)).toEqual(["delta", "done", "final"])

      const limited = (retryAfterSeconds: unknown) =>
        failure("QUOTA_EXCEEDED", "Daily limit of 1 opener generations reached", { limit: 1, retryAfterSeconds })
      const json = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(json.status).toBe(429)
      expect(json.body).toEqual(limited(expect.any(Number)))
      expectRetryAfter(json, json.body)

      const sse = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(sse.status).toBe(429)
      expect(sse.body).toEqual(limited(expect.any(Number)))
      expectRetryAfter(sse, sse.body)

      expect(openai.requests).toHaveLength(1)
      expect(yield* openerRows(alice.id)).toHaveLength(1)

      // The limit is per user.
      answer("Bob's turn?\n")
      const other = yield* generateJson(url, bob.headers, { profile: { name: "Sam" }, count: 1 })
      expect(other.status).toBe(200)
    })
  )

  it.effect("over the limit, a match's unread screenshot is not sent to the vision model either", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      answer("Coffee or tea?\n")
      expect((yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })).status).toBe(200)

      const bytes = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* ticketFor(url, alice.headers, bytes, "image/png", "profile")
      expect((yield* sendBytes(ticket, bytes)).status).toBe(200)
      const match = yield* newMatch(url, alice.headers, { name: "Kim", profileUploadId: ticket.uploadId })
      openai.enqueue({
        kind: "ok",
        text: JSON.stringify({ name: "Kim", age: 30, bio: null, prompts: [], interests: [] })
      })
      const res = yield* generateJson(url, alice.headers, { matchId: match.id, count: 1 })
      expect(res.status).toBe(429)
      expect(res.body).toMatchObject({ success: false, error: { code: "QUOTA_EXCEEDED" } })
      // Only the first generation reached the provider.
      expect(openai.requests.map((request) => request.stream)).toEqual([true])
    })
  )
})

/** `n` generations at once (JSON): their answers. */
const concurrently = (n: number, run: () => Effect.Effect<HttpResult>) =>
  Effect.all(
    Array.from({ length: n }, () => run()),
    { concurrency: "unbounded" }
  )

const statusesOf = (results: ReadonlyArray<HttpResult>) =>
  results.reduce<Record<number, number>>(
    (counts, res) => ({ ...counts, [res.status]: (counts[res.status] ?? 0) + 1 }),
    {}
  )

layer(serverWith({ OPENERS_DAILY_LIMIT: "5" }), { timeout: 60_000 })("opener quota: under concurrency", (it) => {
  it.effect(
    "a failed generation gives its reservation back; then 20 at once: exactly the limit succeed, the rest 429",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        // Two generations that fail before any opener is saved: they do not count.
        openai.enqueue({ kind: "status", status: 500 })
        openai.enqueue({ kind: "status", status: 500 })
        for (let i = 0; i < 2; i++) {
          const failed = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 3 })
          expect(failed.status).toBe(503)
        }

        // The provider answers slowly, so every request is past admission before any opener is saved.
        openai.setFallback({
          kind: "ok",
          text: "One?\nTwo?\nThree?\n",
          chunks: ["One?\n", "Two?\n", "Three?\n"],
          usage: { input: 100, output: 10 },
          delayMs: 300
        })
        const results = yield* concurrently(20, () =>
          generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 3 })
        )
        expect(statusesOf(results)).toEqual({ 200: 5, 429: 15 })
        for (const res of results.filter((r) => r.status === 429)) {
          expect(res.body).toEqual(
            failure("QUOTA_EXCEEDED", "Daily limit of 5 opener generations reached", {
              limit: 5,
              retryAfterSeconds: expect.any(Number)
            })
          )
          expectRetryAfter(res, res.body)
        }
        const saved = yield* openerRows(alice.id)
        expect(saved.length).toBeLessThanOrEqual(5 * 3)
        expect(new Set(saved.map((row) => row["batch_id"])).size).toBe(5)
        // The refused ones never reached the provider; the two that failed were given back.
        expect(openai.requests).toHaveLength(2 + 5)
        expect(
          yield* sql("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'openers'", [alice.id])
        ).toEqual([{ used: 5 }])
      })
  )
})

// Output tokens only, 10 micro-units each: a count-1 generation (at most 180 output tokens) is
// admitted with 1,800 reserved and costs 1,500 (the fake's 150 output tokens).
layer(
  serverWith({
    AI_DAILY_SPEND_CAP_MICROS: "5000",
    AI_PRICES: JSON.stringify({ "gpt-4o": { inputPerMillion: 0, outputPerMillion: 10_000_000 } })
  }),
  { timeout: 60_000 }
)("opener quota: AI spend cap under concurrency", (it) => {
  it.effect("generations at once never take recorded + reserved spend past the cap; reservations are released", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.setFallback({ kind: "ok", text: "Hello there?\n", usage: { input: 100, output: 150 }, delayMs: 300 })
      const results = yield* concurrently(12, () =>
        generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      )
      const ok = results.filter((res) => res.status === 200).length
      expect(ok).toBeGreaterThan(0)
      expect(ok + results.filter((res) => res.status === 429).length).toBe(12)
      const [spent] = yield* sql<{ total: number }>(
        "SELECT coalesce(sum(cost_micros), 0)::int AS total FROM ai_calls WHERE user_id = $1",
        [alice.id]
      )
      expect(spent?.total).toBe(ok * 1_500)
      expect(spent?.total).toBeLessThanOrEqual(5_000)
      // Every reservation was settled: nothing stays reserved once the answers are out.
      expect(yield* sql("SELECT amount_micros FROM ai_spend_reservations WHERE user_id = $1", [alice.id])).toEqual([])
      for (const res of results.filter((r) => r.status === 429)) {
        expect(res.body).toMatchObject({ success: false, error: { code: "QUOTA_EXCEEDED" } })
      }
    })
  )
})

// Prices low enough that a generation's upper bound is a few micro-units (3 to 30).
layer(
  serverWith({
    AI_DAILY_SPEND_CAP_MICROS: "1000",
    AI_PRICES: JSON.stringify({ "gpt-4o": { inputPerMillion: 10_000, outputPerMillion: 10_000 } })
  }),
  { timeout: 60_000 }
)("opener quota: AI spend cap", (it) => {
  const spent = (userId: string, costMicros: number) =>
    sql(
      "INSERT INTO ai_calls (id, user_id, feature, provider, model, input_tokens, output_tokens, cost_micros, latency_ms, outcome) VALUES ($1, $2, 'openers', 'gpt-4o', 'gpt-4o', 0, 0, $3, 1, 'ok')",
      [`call_${userId}_${costMicros}`, userId, costMicros]
    )
  const overBudget = (retryAfterSeconds: unknown) =>
    failure("QUOTA_EXCEEDED", "Today's AI budget for this account is used up", { retryAfterSeconds })

  it.effect("a user at the cap gets 429 QUOTA_EXCEEDED with Retry-After (JSON); no provider is called", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      yield* spent(alice.id, 1_000)
      const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(res.status).toBe(429)
      expect(res.body).toEqual(overBudget(expect.any(Number)))
      expectRetryAfter(res, res.body)
      expect(openai.requests).toHaveLength(0)
      expect(yield* openerRows(alice.id)).toEqual([])
    })
  )

  // KNOWN BUG (reported, not fixed): with `Accept: text/event-stream` the spend cap is checked inside
  // the stream, after the 200 and its headers are sent, so the client gets 200 and an `error` event
  it.effect("a user at the cap gets 429 QUOTA_EXCEEDED with Retry-After with SSE too, not a 200 stream", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      yield* spent(alice.id, 1_000)
      const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect({ status: res.status, events: res.events }).toEqual({ status: 429, events: [] })
      expect(res.body).toEqual(overBudget(expect.any(Number)))
      expectRetryAfter(res, res.body)
      expect(openai.requests).toHaveLength(0)
    })
  )

  it.effect("under the cap by more than the call's upper bound, generation goes ahead", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      yield* spent(alice.id, 970)
      answer("Still within budget?\n")
      const res = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ data: { openers: [{ text: "Still within budget?" }] } })
    })
  )

  it.effect("under the cap, but not by the call's upper bound: 429 in both modes, no provider is called", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      yield* spent(alice.id, 999)
      const json = yield* generateJson(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(json.status).toBe(429)
      expect(json.body).toEqual(overBudget(expect.any(Number)))
      const sse = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect({ status: sse.status, events: sse.events }).toEqual({ status: 429, events: [] })
      expect(openai.requests).toHaveLength(0)
    })
  )
})
