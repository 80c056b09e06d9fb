/** The sweeper of unused uploads runs on its interval (TestClock: no waiting) and survives failures. */
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Ref, TestClock } from "effect"
import { sweepEvery } from "../../../../src/modules/uploads/uploads.service.ts"

describe("sweepEvery", () => {
  it.scoped("sweeps once per interval, the first time one interval after start", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      yield* sweepEvery(
        Duration.minutes(10),
        Ref.update(runs, (n) => n + 1)
      )
      yield* TestClock.adjust(Duration.minutes(9))
      expect(yield* Ref.get(runs)).toBe(0)
      yield* TestClock.adjust(Duration.minutes(1))
      expect(yield* Ref.get(runs)).toBe(1)
      yield* TestClock.adjust(Duration.minutes(30))
      expect(yield* Ref.get(runs)).toBe(4)
    })
  )

  it.scoped("a failing sweep is logged and the next one still runs", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const sweep = Ref.updateAndGet(runs, (n) => n + 1).pipe(
        Effect.flatMap((n) => (n === 1 ? Effect.fail("storage unreachable") : Effect.void))
      )
      yield* sweepEvery(Duration.seconds(60), sweep)
      yield* TestClock.adjust(Duration.seconds(180))
      expect(yield* Ref.get(runs)).toBe(3)
    })
  )

  it.effect("stops with its scope", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      yield* Effect.scoped(
        sweepEvery(
          Duration.seconds(60),
          Ref.update(runs, (n) => n + 1)
        )
      )
      yield* TestClock.adjust(Duration.seconds(600))
      expect(yield* Ref.get(runs)).toBe(0)
    })
  )
})
