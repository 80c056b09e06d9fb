import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { ownedBy } from "../../../src/core/ownership.ts"

describe("ownedBy", () => {
  const row = { id: "m1", userId: "alice", name: "Sam" }

  it.effect("returns the owner's row", () =>
    Effect.gen(function* () {
      expect(yield* ownedBy("alice", "Match")(row)).toBe(row)
    })
  )

  it.effect("another user's row fails exactly like a missing one", () =>
    Effect.gen(function* () {
      const foreign = yield* Effect.exit(ownedBy("bob", "Match")(row))
      const missing = yield* Effect.exit(ownedBy("bob", "Match")(null))
      expect(Exit.isFailure(foreign)).toBe(true)
      expect(foreign).toStrictEqual(missing)
      if (Exit.isFailure(foreign)) {
        expect(JSON.stringify(foreign.cause)).toContain("Match not found")
      }
    })
  )
})
