/** What a rate limiter answers, shared by its implementations. */
import { Duration, type Effect, Schema } from "effect"
import type { RateRule } from "./config.ts"

export interface RateDecision {
  readonly allowed: boolean
  readonly limit: number
  /** Units left in the window after this call. */
  readonly remaining: number
  /** Ms until the oldest counted call leaves the window (one unit comes back); 0 when nothing is counted. For `RateLimit-Reset`. */
  readonly resetMs: number
  /** Ms until this call's `cost` would fit; 0 when allowed. */
  readonly retryAfterMs: number
}

export class RateLimitStoreError extends Schema.TaggedError<RateLimitStoreError>()("RateLimitStoreError", {
  cause: Schema.Defect
}) {}

export interface RateLimiterShape {
  /** Counts `cost` (default 1) against `rule` for `key` (e.g. "user:<id>", "ip:<addr>"). Never fails. */
  readonly consume: (rule: RateRule, key: string, cost?: number) => Effect.Effect<RateDecision>
  /**
   * Drops every window, of any rule, whose key ends with `:<subject>` ("user:<clerkId>" also
   * drops "rpc:user:<clerkId>"): account erasure. Answers how many were dropped.
   */
  readonly forget: (subject: string) => Effect.Effect<number, RateLimitStoreError>
}

/** Costs are whole units; 0 (or less) asks without counting. */
export const normalizeCost = (cost: number | undefined): number =>
  cost === undefined ? 1 : Number.isFinite(cost) ? Math.max(0, Math.ceil(cost)) : 1

export const windowMsOf = (rule: RateRule): number => Math.max(1, Math.round(Duration.toMillis(rule.window)))

/** What a limiter that cannot decide (its store is unreachable) answers: allowed, as if fresh. */
export const degradedDecision = (rule: RateRule, cost: number): RateDecision => ({
  allowed: true,
  limit: rule.limit,
  remaining: Math.max(0, rule.limit - cost),
  resetMs: 0,
  retryAfterMs: 0
})
