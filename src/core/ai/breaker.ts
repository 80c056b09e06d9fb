/**
 * A circuit breaker per provider: after `failures` consecutive transient failures the provider
 * is skipped for `cooldownMs`; then one trial request is let through (half-open), and its
 * outcome closes or re-opens the circuit. Time comes from Effect's Clock (TestClock in tests).
 */
import { Clock, Effect, Ref } from "effect"

interface CircuitState {
  readonly consecutiveFailures: number
  readonly openUntil: number | undefined
  readonly trialInFlight: boolean
}

const closed: CircuitState = { consecutiveFailures: 0, openUntil: undefined, trialInFlight: false }

export interface BreakerOptions {
  readonly failures: number
  readonly cooldownMs: number
}

export type CircuitView = "closed" | "open" | "half-open"

export const makeBreaker = (options: BreakerOptions) =>
  Effect.gen(function* () {
    const states = yield* Ref.make(new Map<string, CircuitState>())
    const stateOf = (map: Map<string, CircuitState>, key: string) => map.get(key) ?? closed
    const update = (key: string, f: (state: CircuitState) => CircuitState) =>
      Ref.update(states, (map) => new Map(map).set(key, f(stateOf(map, key))))

    /** Whether a request may go to `key` now; a half-open circuit admits one trial at a time. */
    const allow = (key: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.modify(states, (map): [boolean, Map<string, CircuitState>] => {
          const state = stateOf(map, key)
          if (state.openUntil === undefined) return [true, map]
          if (now < state.openUntil || state.trialInFlight) return [false, map]
          return [true, new Map(map).set(key, { ...state, trialInFlight: true })]
        })
      )

    const succeeded = (key: string) => update(key, () => closed)

    const failed = (key: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        update(key, (state) => {
          const consecutiveFailures = state.consecutiveFailures + 1
          const trips = state.trialInFlight || consecutiveFailures >= options.failures
          return {
            consecutiveFailures,
            openUntil: trips ? now + options.cooldownMs : state.openUntil,
            trialInFlight: false
          }
        })
      )

    const view = (key: string) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const state = stateOf(yield* Ref.get(states), key)
        if (state.openUntil === undefined) return "closed" as CircuitView
        return (now < state.openUntil ? "open" : "half-open") as CircuitView
      })

    return { allow, succeeded, failed, view } as const
  })

export type Breaker = Effect.Effect.Success<ReturnType<typeof makeBreaker>>
