/** The in-memory rate limiter: the shared contract, then that it forgets keys whose window is over. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, TestClock } from "effect"
import { makeMemoryRateLimiter } from "../../../../src/core/rate-limit/rate-limiter.ts"
import { rateLimiterContract, rule } from "../../../fixtures/rate-limiter-contract.ts"

rateLimiterContract({ backend: "memory", make: makeMemoryRateLimiter() })

describe("in-memory rate limiter", () => {
  it.effect("drops the keys of finished windows at the next sweep (no growth with many keys)", () =>
    Effect.gen(function* () {
      const limiter = yield* makeMemoryRateLimiter({ sweepInterval: Duration.seconds(30) })
      for (let i = 0; i < 1_000; i++) yield* limiter.consume(rule(5, 10), `ip:10.0.${Math.floor(i / 250)}.${i % 250}`)
      yield* limiter.consume(rule(5, 120, "long"), "user:kept")
      expect(yield* limiter.trackedKeys).toBe(1_001)
      yield* TestClock.adjust(Duration.seconds(31))
      yield* limiter.consume(rule(5, 10), "user:new")
      expect(yield* limiter.trackedKeys).toBe(2)
      yield* TestClock.adjust(Duration.seconds(121))
      yield* limiter.consume(rule(5, 10), "user:new")
      expect(yield* limiter.trackedKeys).toBe(1)
    })
  )
})
