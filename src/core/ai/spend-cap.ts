/**
 * The daily AI spend cap, per user and UTC day: each call reserves an upper bound of its cost
 * before any provider is called, and the reservation is released once the call's ledger entries are
 * written (they then count as spent). Concurrent calls cannot all pass a check made before any settles.
 *
 * A reservation is a lease: it counts only until its expiry, which the call renews while it runs.
 * A call whose process dies (SIGKILL, OOM, a lost host) runs no finalizer and renews nothing, so
 * its reservation stops counting one lease after its last renewal at most, with nobody acting.
 */
import { Clock, Duration, Effect } from "effect"
import { secondsToNextUtcDay, startOfUtcDay } from "../quota/quotas.ts"
import { AiQuotaExceeded } from "./errors.ts"
import { type AiLedgerShape, costMicros, type PriceTable } from "./ledger.ts"
import type { ProviderId, Usage } from "./provider.ts"

/** Output tokens assumed for a request that sets no maximum (the providers' own defaults are at most this). */
const DEFAULT_OUTPUT_BOUND = 4_096
/** Input tokens assumed for one image: above what each provider counts for an image of IMAGE_MAX_EDGE. */
const IMAGE_TOKEN_BOUND = 3_000

/**
 * Tokens of a text, bounded above: no tokenizer makes more tokens than the text has UTF-8 bytes,
 * plus a little for the request's framing.
 */
const tokenBound = (...texts: ReadonlyArray<string | undefined>) =>
  texts.reduce((sum, text) => sum + (text === undefined ? 0 : Buffer.byteLength(text, "utf8")), 64)

/**
 * How long a reservation counts without being renewed: three times the longest provider timeout
 * (the longest a live call waits without progress), at least 30 s. A call renews it every third
 * of that, so a live call keeps it through two missed renewals (a busy event loop, a slow database).
 */
export const reservationLeaseMs = (timeoutsMs: ReadonlyArray<number>): number =>
  Math.max(30_000, 3 * Math.max(0, ...timeoutsMs))

export interface SpendCapOptions {
  readonly ledger: AiLedgerShape
  readonly prices: PriceTable
  /** The chain: an estimate prices the call at its dearest provider. */
  readonly providers: ReadonlyArray<ProviderId>
  /** Micro-units per user and UTC day; 0 disables the cap. */
  readonly dailyCapMicros: number
  /** See `reservationLeaseMs`. */
  readonly leaseMs: number
}

export const makeSpendCap = (options: SpendCapOptions) => {
  const applies = (userId: string | undefined): userId is string => options.dailyCapMicros > 0 && userId !== undefined

  const overCap = (spentMicros: number, now: number) =>
    new AiQuotaExceeded({ retryAfterSeconds: secondsToNextUtcDay(now), spentMicros, capMicros: options.dailyCapMicros })

  return {
    /**
     * The most one try can cost: its input and maximum output priced at the dearest provider of
     * the chain. An answer that stays invalid bills too, but ends the chain; its corrective retry
     * reserves its own estimate.
     */
    estimate: (
      request: { readonly system?: string; readonly prompt: string; readonly maxOutputTokens?: number },
      image: boolean
    ): number => {
      const usage: Usage = {
        inputTokens: tokenBound(request.system, request.prompt) + (image ? IMAGE_TOKEN_BOUND : 0),
        outputTokens: request.maxOutputTokens ?? DEFAULT_OUTPUT_BOUND
      }
      return Math.max(0, ...options.providers.map((provider) => costMicros(options.prices, provider, usage)))
    },

    /** A read-only look at the cap for a call of `estimate`: what callers use to answer before starting a stream. */
    check: (userId: string | undefined, estimate: number) =>
      Effect.gen(function* () {
        if (!applies(userId)) return
        const now = yield* Clock.currentTimeMillis
        const spent = yield* options.ledger.spentSince(userId, startOfUtcDay(now))
        if (spent >= options.dailyCapMicros || spent + estimate > options.dailyCapMicros)
          return yield* overCap(spent, now)
      }),

    /**
     * Reserves `estimate` (spent + live reservations + estimate ≤ cap) in the caller's scope,
     * released when it closes and renewed every third of the lease until then.
     */
    admit: (userId: string | undefined, estimate: number) =>
      Effect.gen(function* () {
        if (!applies(userId)) return
        const admission = yield* Effect.acquireRelease(
          Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const admission = yield* options.ledger.reserve({
              userId,
              since: startOfUtcDay(now),
              estimateMicros: estimate,
              capMicros: options.dailyCapMicros,
              expiresAt: new Date(now + options.leaseMs)
            })
            if (admission._tag === "Refused") return yield* overCap(admission.spentMicros, now)
            return admission
          }),
          (admission) => admission.release
        )
        // Forked after the release's finalizer, so stopped before it runs (finalizers run in reverse).
        yield* Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) => admission.renew(new Date(now + options.leaseMs))),
          Effect.delay(Duration.millis(options.leaseMs / 3)),
          Effect.forever,
          Effect.forkScoped
        )
      })
  }
}
