/**
 * The spend cap's reservations in PostgreSQL (`ai_spend_reservations`): a call killed with
 * SIGKILL mid-flight holds its reservation until its lease passes and not a moment longer (the
 * user's next call is then admitted, with nobody acting); admissions at once never pass the cap
 * together; a call that ends gives its reservation back at once; erasure takes them with the user,
 * and a call of a user erased after it was let in reserves nothing.
 * Time after the kill is the TestClock's, set past the lease: no waiting for it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Schema, Stream, TestClock } from "effect"
import { AiLedgerDb } from "../../../src/core/ai/ledger-db.ts"
import { AiLedger, DEFAULT_PRICES } from "../../../src/core/ai/ledger.ts"
import { type AiProvider, ProviderError } from "../../../src/core/ai/provider.ts"
import { reservationLeaseMs } from "../../../src/core/ai/spend-cap.ts"
import { AiStrategy } from "../../../src/core/ai/strategy.ts"
import { startOfUtcDay } from "../../../src/core/quota/quotas.ts"
import { newClerkId } from "../../support/auth.ts"
import { sql, TestDb, testDatabaseUrl } from "../../support/database.ts"
import { cleanEnv, outputContains, start } from "../../support/processes.ts"

const TIMEOUT_MS = 60_000
const LEASE_MS = reservationLeaseMs([TIMEOUT_MS])
// gpt-4o list prices: 65 input tokens (prompt "x" and framing) and 100 output tokens at most.
const ESTIMATE = 1_163
const CAP = 2_000
const call = {
  schema: Schema.Struct({ ok: Schema.Boolean }),
  prompt: "x",
  maxOutputTokens: 100
}

/** Answers at once (100 output tokens: 1,000 micro-units), or fails as told. */
const provider = (outcome: "answer" | "fail"): AiProvider => ({
  id: "gpt-4o",
  model: "gpt-test",
  timeoutMs: TIMEOUT_MS,
  generate: () =>
    outcome === "answer"
      ? Effect.succeed({ text: '{"ok":true}', usage: { inputTokens: 0, outputTokens: 100 } })
      : Effect.fail(new ProviderError({ provider: "gpt-4o", kind: "invalid_request", status: 400, message: "no" })),
  stream: () => Stream.never
})

/** The database ledger, in the test's scope (its pool must outlive the calls). */
const dbLedger = Layer.build(AiLedgerDb.pipe(Layer.provide(TestDb())))

const strategy = (outcome: "answer" | "fail" = "answer") =>
  Effect.flatMap(dbLedger, (ledger) =>
    AiStrategy.make({
      providers: [provider(outcome)],
      prices: DEFAULT_PRICES,
      breaker: { failures: 1_000, cooldownMs: 1_000 },
      dailyCapMicros: CAP
    }).pipe(Effect.provide(ledger))
  )

const newUser = Effect.gen(function* () {
  const clerkId = newClerkId("spend")
  const [row] = yield* sql<{ id: string }>(
    "INSERT INTO users (id, clerk_id, updated_at) VALUES ($1, $2, now()) RETURNING id",
    [`u_${clerkId}`, clerkId]
  )
  return row?.id ?? ""
})

const reservations = (userId: string) =>
  sql<{ amount: number; expires_ms: string }>(
    `SELECT amount_micros AS amount, (extract(epoch FROM expires_at) * 1000)::bigint::text AS expires_ms
     FROM ai_spend_reservations WHERE user_id = $1`,
    [userId]
  )

const settled = (userId: string) =>
  Effect.map(
    sql<{ total: number }>("SELECT coalesce(sum(cost_micros), 0)::int AS total FROM ai_calls WHERE user_id = $1", [
      userId
    ]),
    (rows) => rows[0]?.total
  )

describe("AI spend reservations in PostgreSQL", () => {
  it.scoped(
    "a call killed with SIGKILL mid-flight: its reservation counts until its lease passes, then not at all",
    () =>
      Effect.gen(function* () {
        const userId = yield* newUser
        const child = start("test/integration/ai/support/call-then-hang.ts", cleanEnv({}), [
          testDatabaseUrl(),
          userId,
          String(CAP),
          String(TIMEOUT_MS)
        ])
        yield* Effect.promise(() => outputContains(child.child, child.output, "admitted"))
        const killedAt = Date.now()
        yield* Effect.promise(() => {
          const died = new Promise((resolve) => child.child.once("exit", resolve))
          child.child.kill("SIGKILL")
          return died
        })
        // What the dead process left: its reservation, expiring one lease after it was last renewed at most.
        const [held] = yield* reservations(userId)
        expect(held?.amount).toBe(ESTIMATE)
        expect(Number(held?.expires_ms)).toBeLessThanOrEqual(killedAt + LEASE_MS)

        const ai = yield* strategy()
        yield* TestClock.setTime(killedAt)
        expect(yield* Effect.flip(ai.generateObject({ feature: "openers", userId }, call))).toMatchObject({
          _tag: "AiQuotaExceeded",
          spentMicros: ESTIMATE,
          capMicros: CAP
        })
        // One lease after the kill: the reservation no longer counts, the next call is admitted.
        yield* TestClock.setTime(killedAt + LEASE_MS)
        const answered = yield* ai.generateObject({ feature: "openers", userId }, call)
        expect(answered.value).toEqual({ ok: true })
        // The dead call's row went with that admission, the new call's with its end.
        expect(yield* reservations(userId)).toEqual([])
        expect(yield* settled(userId)).toBe(1_000)
      })
  )

  it.scoped("admissions at once never pass the cap together; released, nothing stays reserved", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      const ledger = yield* Effect.provide(AiLedger, yield* dbLedger)
      const now = Date.now()
      yield* TestClock.setTime(now)
      const admissions = yield* Effect.all(
        Array.from({ length: 16 }, () =>
          ledger.reserve({
            userId,
            since: startOfUtcDay(now),
            estimateMicros: 1_000,
            capMicros: 3_500,
            expiresAt: new Date(now + LEASE_MS)
          })
        ),
        { concurrency: "unbounded" }
      )
      const admitted = admissions.flatMap((admission) => (admission._tag === "Admitted" ? [admission] : []))
      expect(admitted).toHaveLength(3)
      expect((yield* reservations(userId)).map((row) => row.amount)).toEqual([1_000, 1_000, 1_000])
      expect(yield* ledger.spentSince(userId, startOfUtcDay(now))).toBe(3_000)
      yield* Effect.forEach(admitted, (admission) => admission.release, { discard: true })
      expect(yield* reservations(userId)).toEqual([])
      expect(yield* ledger.spentSince(userId, startOfUtcDay(now))).toBe(0)
    })
  )

  it.scoped("a call that ends gives its reservation back at once, failed or answered", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      yield* TestClock.setTime(Date.now())
      const failing = yield* strategy("fail")
      expect((yield* Effect.flip(failing.generateObject({ feature: "openers", userId }, call)))._tag).toBe("AiRejected")
      expect(yield* reservations(userId)).toEqual([])
      const ok = yield* strategy("answer")
      yield* ok.generateObject({ feature: "openers", userId }, call)
      expect(yield* reservations(userId)).toEqual([])
      // Nothing but the ledger counts: 1,000 spent, and a call of 1,163 more would not fit under 2,000.
      const error = yield* Effect.flip(ok.generateObject({ feature: "openers", userId }, call))
      expect(error).toMatchObject({ _tag: "AiQuotaExceeded", spentMicros: 1_000 })
    })
  )

  it.scoped("erasing the user erases their reservations", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      const ledger = yield* Effect.provide(AiLedger, yield* dbLedger)
      const now = yield* Clock.currentTimeMillis
      const admission = yield* ledger.reserve({
        userId,
        since: startOfUtcDay(now),
        estimateMicros: 10,
        capMicros: 100,
        expiresAt: new Date(now + LEASE_MS)
      })
      expect(admission._tag).toBe("Admitted")
      expect(yield* reservations(userId)).toHaveLength(1)
      yield* sql("DELETE FROM users WHERE id = $1", [userId])
      expect(yield* reservations(userId)).toEqual([])
    })
  )

  it.scoped("a call of a user erased after it was let in is answered; nothing is reserved or recorded for them", () =>
    Effect.gen(function* () {
      const userId = yield* newUser
      yield* TestClock.setTime(Date.now())
      const ai = yield* strategy("answer")
      yield* sql("DELETE FROM users WHERE id = $1", [userId])
      // Before: a defect, the reservation's row refused by the foreign key of its user.
      const answered = yield* ai.generateObject({ feature: "openers", userId }, call)
      expect(answered.value).toEqual({ ok: true })
      expect(yield* reservations(userId)).toEqual([])
      expect(yield* settled(userId)).toBe(0)
    })
  )
})
