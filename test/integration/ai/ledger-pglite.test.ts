/**
 * The database ledger on embedded PGlite (`npm run dev`, and a server without DATABASE_URL), whose
 * raw statements go through Prisma's client rather than a pool: an admission is admitted until the
 * cap, then refused with what was spent and reserved; a release gives it back, a renewal keeps it
 * counting past its first expiry; a recorded call counts, an entry of a user who is gone is no
 * failure; a user erased after the call was let in reserves nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, TestClock } from "effect"
import { AiLedgerDb } from "../../../src/core/ai/ledger-db.ts"
import { AiLedger, type AiLedgerShape, type LedgerEntry } from "../../../src/core/ai/ledger.ts"
import { Db } from "../../../src/core/db/db.ts"
import { Prisma } from "../../../src/core/db/generated/client.ts"

const DAY_START = new Date("2026-12-07T00:00:00.000Z")
const NOON = DAY_START.getTime() + 12 * 3_600_000
const CAP = 2_000

const entry = (userId: string, costMicros: number): LedgerEntry => ({
  userId,
  feature: "openers",
  provider: "gpt-4o",
  model: "gpt-test",
  inputTokens: 10,
  outputTokens: 20,
  costMicros,
  latencyMs: 5,
  ttftMs: undefined,
  outcome: "ok",
  errorKind: undefined,
  at: new Date(NOON)
})

/** The ledger and raw SQL on one in-memory PGlite, for the test's scope. */
const withLedger = <A, E>(
  body: (ledger: AiLedgerShape, sql: (statement: Prisma.Sql) => Effect.Effect<unknown>) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(Layer.provideMerge(AiLedgerDb, Db.pglite("memory://")))
    const db = Context.get(context, Db)
    return yield* body(Context.get(context, AiLedger), (statement) => Effect.orDie(db.sql("test", statement)))
  })

describe("AI ledger on PGlite", () => {
  it.scoped("admits until the cap, refuses with what counts, gives back, renews, records", () =>
    withLedger((ledger, run) =>
      Effect.gen(function* () {
        yield* TestClock.setTime(NOON)
        yield* run(Prisma.sql`INSERT INTO users (id, clerk_id, updated_at) VALUES ('u1', 'clerk_u1', now())`)
        const request = (estimateMicros: number) => ({
          userId: "u1",
          since: DAY_START,
          estimateMicros,
          capMicros: CAP,
          expiresAt: new Date(NOON + 60_000)
        })
        yield* ledger.record(entry("u1", 500))
        const first = yield* ledger.reserve(request(1_000))
        expect(first._tag).toBe("Admitted")
        expect(yield* ledger.spentSince("u1", DAY_START)).toBe(1_500)
        expect(yield* ledger.reserve(request(600))).toEqual({ _tag: "Refused", spentMicros: 1_500 })

        // Renewed past its first expiry, it still counts there; released, it no longer does.
        if (first._tag !== "Admitted") return
        yield* first.renew(new Date(NOON + 120_000))
        yield* TestClock.setTime(NOON + 90_000)
        expect(yield* ledger.reserve(request(600))).toEqual({ _tag: "Refused", spentMicros: 1_500 })
        yield* first.release
        expect(yield* ledger.spentSince("u1", DAY_START)).toBe(500)
        expect((yield* ledger.reserve(request(600)))._tag).toBe("Admitted")
      })
    )
  )

  it.scoped("a user who is gone: nothing reserved, an entry not recorded and no failure", () =>
    withLedger((ledger) =>
      Effect.gen(function* () {
        const admission = yield* ledger.reserve({
          userId: "gone",
          since: DAY_START,
          estimateMicros: 1_000_000,
          capMicros: CAP,
          expiresAt: new Date(NOON + 60_000)
        })
        expect(admission._tag).toBe("Admitted")
        expect(yield* Effect.exit(ledger.record(entry("gone", 10)))).toStrictEqual(Exit.void)
        expect(yield* ledger.spentSince("gone", DAY_START)).toBe(0)
      })
    )
  )
})
