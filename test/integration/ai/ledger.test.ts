/** The cost ledger in PostgreSQL: one row per attempt with the right numbers, and the daily cap read from it. */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Redacted, Schema, Stream } from "effect"
import { AiLedgerDb } from "../../../src/core/ai/ledger-db.ts"
import { AiLedger, DEFAULT_PRICES } from "../../../src/core/ai/ledger.ts"
import { makeOpenAiProvider } from "../../../src/core/ai/openai.ts"
import { AiStrategy } from "../../../src/core/ai/strategy.ts"
import { newClerkId } from "../../support/auth.ts"
import { sql, TestDb } from "../../support/database.ts"
import { type FakeProvider, startFakeProvider } from "../../fakes/ai/index.ts"

let fake: FakeProvider
beforeAll(async () => {
  fake = await startFakeProvider("openai")
})
afterAll(async () => {
  await fake.close()
})

/** The chain on a ledger in the test's scope (the ledger's pool must outlive the chain's calls). */
const strategy = (dailyCapMicros: number) =>
  Effect.flatMap(Layer.build(AiLedgerDb.pipe(Layer.provide(TestDb()))), (ledger) =>
    AiStrategy.make({
      providers: [
        makeOpenAiProvider({ apiKey: Redacted.make("k"), model: "gpt-test", timeoutMs: 2_000, baseUrl: fake.url })
      ],
      prices: DEFAULT_PRICES,
      breaker: { failures: 5, cooldownMs: 1_000 },
      dailyCapMicros
    }).pipe(Effect.provide(ledger))
  )

const newUser = Effect.gen(function* () {
  const clerkId = newClerkId("ledger")
  const [row] = yield* sql<{ id: string }>(
    "INSERT INTO users (id, clerk_id, updated_at) VALUES ($1, $2, now()) RETURNING id",
    [`u_${clerkId}`, clerkId]
  )
  return row?.id ?? ""
})

const rows = (userId: string) =>
  sql(
    "SELECT feature, provider, model, input_tokens, output_tokens, cost_micros, outcome, ttft_ms FROM ai_calls WHERE user_id = $1 ORDER BY created_at",
    [userId]
  )

describe("AI ledger in PostgreSQL", () => {
  it.scopedLive("every call leaves a row with tokens, cost and outcome; streams record their time to first delta", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      const ai = yield* strategy(0)
      fake.enqueue({ kind: "ok", text: '{"ok":true}', usage: { input: 1_000, output: 100 } })
      yield* ai.generateObject(
        { feature: "openers", userId },
        { schema: Schema.Struct({ ok: Schema.Boolean }), prompt: "x" }
      )
      fake.enqueue({ kind: "ok", text: "streamed", usage: { input: 400, output: 40 } })
      yield* Stream.runDrain(ai.streamText({ feature: "sessions", userId }, { prompt: "y" }))
      const written = yield* rows(userId)
      expect(written).toEqual([
        expect.objectContaining({
          feature: "openers",
          provider: "gpt-4o",
          model: "gpt-test",
          input_tokens: 1000,
          output_tokens: 100,
          cost_micros: 3500,
          outcome: "ok",
          ttft_ms: null
        }),
        expect.objectContaining({
          feature: "sessions",
          input_tokens: 400,
          output_tokens: 40,
          cost_micros: 1400,
          outcome: "ok",
          ttft_ms: expect.any(Number)
        })
      ])
    })
  )

  it.scopedLive("the daily cap is read from the ledger: over it, no provider is called", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      yield* sql(
        "INSERT INTO ai_calls (id, user_id, feature, provider, model, input_tokens, output_tokens, cost_micros, latency_ms, outcome) VALUES ($1, $2, 'openers', 'gpt-4o', 'gpt-test', 0, 0, 6000, 1, 'ok')",
        [`call_${userId}`, userId]
      )
      const ai = yield* strategy(5_000)
      const before = fake.requests.length
      const error = yield* Effect.flip(
        ai.generateObject(
          { feature: "openers", userId },
          { schema: Schema.Struct({ ok: Schema.Boolean }), prompt: "x" }
        )
      )
      expect(error).toMatchObject({ _tag: "AiQuotaExceeded", spentMicros: 6000, capMicros: 5000 })
      expect(fake.requests.length).toBe(before)
    })
  )

  it.scopedLive("erasing the user erases their ledger rows", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      const ai = yield* strategy(0)
      fake.enqueue({ kind: "ok", text: '{"ok":true}' })
      yield* ai.generateObject(
        { feature: "openers", userId },
        { schema: Schema.Struct({ ok: Schema.Boolean }), prompt: "x" }
      )
      expect(yield* rows(userId)).toHaveLength(1)
      yield* sql("DELETE FROM users WHERE id = $1", [userId])
      expect(yield* rows(userId)).toHaveLength(0)
    })
  )

  it.scopedLive("an entry of a user erased while the call ran is not recorded, and is no failure", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      const ledger = yield* Effect.provide(AiLedger, yield* Layer.build(AiLedgerDb.pipe(Layer.provide(TestDb()))))
      yield* sql("DELETE FROM users WHERE id = $1", [userId])
      // Before: a defect (DbError, the foreign key of ai_calls' user), logged as an ERROR by the chain.
      const recorded = yield* Effect.exit(
        ledger.record({
          userId,
          feature: "openers",
          provider: "gpt-4o",
          model: "gpt-test",
          inputTokens: 100,
          outputTokens: 10,
          costMicros: 350,
          latencyMs: 5,
          ttftMs: 1,
          outcome: "ok",
          errorKind: undefined,
          at: new Date()
        })
      )
      expect(recorded).toStrictEqual(Exit.void)
      expect(yield* rows(userId)).toEqual([])
    })
  )
})
