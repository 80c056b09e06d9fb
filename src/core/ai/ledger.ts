/**
 * The cost ledger: one entry per provider attempt (including skipped ones), and the spend that
 * the per-user daily cap is checked against. Costs are integer micro-units of currency.
 */
import { Clock, Context, Effect, Layer, Ref, Schema } from "effect"
import { recordAiCall } from "../metrics.ts"
import type { ProviderId, Usage } from "./provider.ts"

export const CallOutcome = Schema.Literal("ok", "timeout", "error", "skipped", "cancelled")
export type CallOutcome = typeof CallOutcome.Type

export interface LedgerEntry {
  readonly userId: string | undefined
  /** The session the call worked for, if any. */
  readonly sessionId?: string | undefined
  readonly feature: string
  readonly provider: ProviderId
  readonly model: string
  readonly inputTokens: number
  readonly outputTokens: number
  readonly costMicros: number
  readonly latencyMs: number
  /** Streams only: time to the first delta. */
  readonly ttftMs: number | undefined
  readonly outcome: CallOutcome
  /** For failures: the provider error's kind (timeout, rate_limited, server, invalid_output, …). */
  readonly errorKind: string | undefined
  readonly at: Date
}

/**
 * A call's admission under the cap: its reservation (given back once its entries are recorded,
 * renewed while it runs), or the spend that refused it.
 */
export type SpendAdmission =
  | {
      readonly _tag: "Admitted"
      readonly release: Effect.Effect<void>
      /** Moves the reservation's expiry to `expiresAt`; one already expired stays expired. */
      readonly renew: (expiresAt: Date) => Effect.Effect<void>
    }
  | { readonly _tag: "Refused"; readonly spentMicros: number }

export interface SpendRequest {
  readonly userId: string
  /** The start of the UTC day the cap is for. */
  readonly since: Date
  /** An upper bound of the call's cost. */
  readonly estimateMicros: number
  readonly capMicros: number
  /**
   * When the reservation stops counting unless renewed before: the call's process renews it
   * while the call runs, so one that dies (SIGKILL, OOM, a lost host) holds it until then at most.
   */
  readonly expiresAt: Date
}

export interface AiLedgerShape {
  readonly record: (entry: LedgerEntry) => Effect.Effect<void>
  /**
   * What `userId` spent since `since` plus what their calls in flight reserved and whose
   * reservations have not expired at the Clock's now (micro-units).
   */
  readonly spentSince: (userId: string, since: Date) => Effect.Effect<number>
  /**
   * Admits a call only if spent + live reservations + its estimate stays within the cap,
   * reserving the estimate in the same atomic step: concurrent calls cannot all pass a check
   * made before any settles. Expired reservations count for nothing.
   */
  readonly reserve: (request: SpendRequest) => Effect.Effect<SpendAdmission>
}

/** A call in flight's reservation, as the in-memory ledger holds it. */
interface Hold {
  readonly id: number
  readonly userId: string
  readonly amount: number
  readonly expiresAt: number
}

export class AiLedger extends Context.Tag("AiLedger")<AiLedger, AiLedgerShape>() {
  /** In memory: tests, and processes without a database. `entries` exposes what was recorded. */
  static readonly memory = Layer.effect(
    AiLedger,
    Effect.map(Ref.make<ReadonlyArray<LedgerEntry>>([]), (entries) => AiLedger.inMemory(entries))
  )

  static inMemory(entries: Ref.Ref<ReadonlyArray<LedgerEntry>>): AiLedgerShape {
    // Reservations of calls in flight, with their expiry; admissions run one at a time.
    const holds = Ref.unsafeMake<ReadonlyArray<Hold>>([])
    const lastId = Ref.unsafeMake(0)
    const lock = Effect.unsafeMakeSemaphore(1)
    const spentSince = (userId: string, since: Date) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const reserved = (yield* Ref.get(holds))
          .filter((hold) => hold.userId === userId && hold.expiresAt > now)
          .reduce((sum, hold) => sum + hold.amount, 0)
        const settled = (yield* Ref.get(entries))
          .filter((entry) => entry.userId === userId && entry.at >= since)
          .reduce((sum, entry) => sum + entry.costMicros, 0)
        return settled + reserved
      })
    return {
      record: (entry) => Ref.update(entries, (all) => [...all, entry]),
      spentSince,
      reserve: (request) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            yield* Ref.update(holds, (all) => all.filter((hold) => hold.expiresAt > now))
            const spent = yield* spentSince(request.userId, request.since)
            if (spent + request.estimateMicros > request.capMicros) {
              return { _tag: "Refused", spentMicros: spent } satisfies SpendAdmission
            }
            const id = yield* Ref.updateAndGet(lastId, (n) => n + 1)
            const hold: Hold = {
              id,
              userId: request.userId,
              amount: request.estimateMicros,
              expiresAt: request.expiresAt.getTime()
            }
            yield* Ref.update(holds, (all) => [...all, hold])
            return {
              _tag: "Admitted",
              release: Ref.update(holds, (all) => all.filter((other) => other.id !== id)),
              renew: (expiresAt) =>
                Effect.flatMap(Clock.currentTimeMillis, (at) =>
                  Ref.update(holds, (all) =>
                    all.map((other) =>
                      other.id === id && other.expiresAt > at ? { ...other, expiresAt: expiresAt.getTime() } : other
                    )
                  )
                )
            } satisfies SpendAdmission
          })
        )
    }
  }
}

/**
 * `ledger` with every recorded entry also counted in the metrics (`wingmate_ai_calls`, tokens,
 * cost): the strategy records each attempt once, so each shows once. The metrics come first: a
 * ledger write that fails (logged by the strategy) does not hide the call.
 */
export const withLedgerMetrics = <E, R>(ledger: Layer.Layer<AiLedger, E, R>): Layer.Layer<AiLedger, E, R> =>
  Layer.effect(
    AiLedger,
    Effect.map(AiLedger, (inner) =>
      AiLedger.of({ ...inner, record: (entry) => Effect.zipRight(recordAiCall(entry), inner.record(entry)) })
    )
  ).pipe(Layer.provide(ledger))

/** Prices per million tokens, in micro-units. */
export interface Price {
  readonly inputPerMillion: number
  readonly outputPerMillion: number
}

export type PriceTable = Readonly<Record<ProviderId, Price>>

/** List prices (USD) of the default models, in micro-dollars per million tokens. */
export const DEFAULT_PRICES: PriceTable = {
  "gemini-flash": { inputPerMillion: 300_000, outputPerMillion: 2_500_000 },
  "gpt-4o": { inputPerMillion: 2_500_000, outputPerMillion: 10_000_000 },
  "claude-sonnet": { inputPerMillion: 3_000_000, outputPerMillion: 15_000_000 },
  local: { inputPerMillion: 0, outputPerMillion: 0 }
}

/** Rounded up: a call never costs zero unless it is free. */
export const costMicros = (prices: PriceTable, provider: ProviderId, usage: Usage): number => {
  const price = prices[provider]
  return Math.ceil(
    (usage.inputTokens * price.inputPerMillion + usage.outputTokens * price.outputPerMillion) / 1_000_000
  )
}
