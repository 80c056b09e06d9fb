/**
 * The cost ledger: one entry per provider attempt (including skipped ones), and the spend that
 * the per-user daily cap is checked against. Costs are integer micro-units of currency.
 */
import { Context, Effect, Layer, Ref, Schema } from "effect"
import type { ProviderId, Usage } from "./provider.ts"

export const CallOutcome = Schema.Literal("ok", "timeout", "error", "skipped", "cancelled")
export type CallOutcome = typeof CallOutcome.Type

export interface LedgerEntry {
  readonly userId: string | undefined
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

export interface AiLedgerShape {
  readonly record: (entry: LedgerEntry) => Effect.Effect<void>
  /** What `userId` spent since `since` (micro-units). */
  readonly spentSince: (userId: string, since: Date) => Effect.Effect<number>
}

export class AiLedger extends Context.Tag("AiLedger")<AiLedger, AiLedgerShape>() {
  /** In memory: tests, and processes without a database. `entries` exposes what was recorded. */
  static readonly memory = Layer.effect(
    AiLedger,
    Effect.map(Ref.make<ReadonlyArray<LedgerEntry>>([]), (entries) => AiLedger.inMemory(entries))
  )

  static inMemory(entries: Ref.Ref<ReadonlyArray<LedgerEntry>>): AiLedgerShape {
    return {
      record: (entry) => Ref.update(entries, (all) => [...all, entry]),
      spentSince: (userId, since) =>
        Effect.map(Ref.get(entries), (all) =>
          all
            .filter((entry) => entry.userId === userId && entry.at >= since)
            .reduce((sum, entry) => sum + entry.costMicros, 0)
        )
    }
  }
}

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
