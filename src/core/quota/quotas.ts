/**
 * Daily allowances per user (opener generations, sessions, regenerations), kept in
 * `usage_counters`: one row per (user, kind, UTC day). Admission is a reservation taken in ONE
 * conditional upsert, so concurrent requests can never take more than the limit between them (a
 * count read before acting is a race); a reservation whose operation produced nothing billable is
 * given back. Rows go with the user (foreign key, cascade). (The AI spend cap keeps its
 * reservations apart, with an expiry: `src/core/ai/ledger-db.ts`.)
 */
import { Clock, Effect, Exit, Schema } from "effect"
import { Db, type DbError, queryWith, type TxClient } from "../db/db.ts"
import type { PrismaClient } from "../db/generated/client.ts"
import { refusingErased } from "../erasure.ts"
import { QuotaExceeded, type Unauthorized } from "../../domain/errors.ts"
import { retryAfter } from "../http/retry-after.ts"

export type QuotaKind = "openers" | "sessions" | "regenerations"

/** What was taken: given back by `release` on the same UTC day's row. */
export interface Reservation {
  readonly userId: string
  readonly kind: QuotaKind
  /** `YYYY-MM-DD` (UTC) */
  readonly day: string
  readonly amount: number
}

/** The allowance is used up until the next UTC midnight. */
export class QuotaRefused extends Schema.TaggedError<QuotaRefused>()("QuotaRefused", {
  kind: Schema.String,
  limit: Schema.Number,
  retryAfterSeconds: Schema.Number
}) {}

const DAY_MS = 86_400_000

export const utcDayOf = (now: number) => new Date(now).toISOString().slice(0, 10)

export const startOfUtcDay = (now: number) => new Date(Math.floor(now / DAY_MS) * DAY_MS)

/** Seconds until the next UTC midnight (at least 1). */
export const secondsToNextUtcDay = (now: number) =>
  Math.max(1, Math.ceil((Math.floor(now / DAY_MS) * DAY_MS + DAY_MS - now) / 1000))

type Client = PrismaClient | TxClient

/** The foreign key of a counter's user (prisma/migrations). */
export const USAGE_USER_FOREIGN_KEY = "usage_counters_user_id_fkey"

/**
 * Takes `amount` if the day's total stays within `limit`; the row's new total, or none. The
 * conflicting row is locked by the upsert, so concurrent takes are serialised on it.
 */
export const takeWith = (client: Client, reservation: Reservation, limit: number) =>
  queryWith(
    client,
    "quotas.take",
    (c) => c.$queryRaw<Array<{ used: number }>>`
      INSERT INTO usage_counters (user_id, kind, day, used)
      SELECT ${reservation.userId}, ${reservation.kind}, ${reservation.day}::date, ${reservation.amount}::int
      WHERE ${reservation.amount}::int <= ${limit}::int
      ON CONFLICT (user_id, kind, day) DO UPDATE SET used = usage_counters.used + EXCLUDED.used
      WHERE usage_counters.used + EXCLUDED.used <= ${limit}::int
      RETURNING used`
  ).pipe(Effect.map((rows) => rows.length > 0))

export const releaseWith = (client: Client, reservation: Reservation) =>
  queryWith(
    client,
    "quotas.release",
    (c) => c.$executeRaw`
      UPDATE usage_counters SET used = GREATEST(used - ${reservation.amount}::int, 0)
      WHERE user_id = ${reservation.userId} AND kind = ${reservation.kind} AND day = ${reservation.day}::date`
  ).pipe(Effect.asVoid)

/**
 * A refusal as the API answers it: 429 `QUOTA_EXCEEDED`, `Retry-After`, `details: { limit,
 * retryAfterSeconds }`. Applied on the request's own fiber (outside a transaction's body, which
 * runs on another), so that the `Retry-After` reaches the response.
 */
export const answeringRefusal =
  (message: (limit: number) => string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    Effect.catchIf(
      self,
      (error): error is Extract<E, QuotaRefused> => error instanceof QuotaRefused,
      (refused) =>
        Effect.zipRight(
          retryAfter(refused.retryAfterSeconds),
          Effect.fail(
            new QuotaExceeded({
              message: message(refused.limit),
              details: { limit: refused.limit, retryAfterSeconds: refused.retryAfterSeconds }
            })
          )
        )
    )

export class Quotas extends Effect.Service<Quotas>()("Quotas", {
  effect: Effect.gen(function* () {
    const db = yield* Db

    /** Today's reservation of `amount` of `kind`, not yet taken. */
    const today = (userId: string, kind: QuotaKind, amount: number) =>
      Effect.map(Clock.currentTimeMillis, (now) => ({
        now,
        reservation: { userId, kind, day: utcDayOf(now), amount } satisfies Reservation
      }))

    /**
     * Takes `amount` of today's `limit` (on `client`: a transaction's, to take it with what it
     * pays for); `QuotaRefused` when it would go over, `Unauthorized` (`account-erased`) when the
     * user's row is gone (erased since the request was authenticated).
     */
    const take = (
      userId: string,
      kind: QuotaKind,
      limit: number,
      options: { readonly amount?: number; readonly client?: TxClient } = {}
    ): Effect.Effect<Reservation, QuotaRefused | DbError | Unauthorized> =>
      Effect.gen(function* () {
        const { now, reservation } = yield* today(userId, kind, options.amount ?? 1)
        const taken = yield* takeWith(options.client ?? db.client, reservation, limit).pipe(
          refusingErased(USAGE_USER_FOREIGN_KEY)
        )
        if (!taken) return yield* new QuotaRefused({ kind, limit, retryAfterSeconds: secondsToNextUtcDay(now) })
        return reservation
      })

    /** Gives a reservation back; a failure is logged (the allowance is then lost for the day, never exceeded). */
    const release = (reservation: Reservation) =>
      releaseWith(db.client, reservation).pipe(
        Effect.catchAll((error) => Effect.logWarning("Quota reservation not released", error))
      )

    /**
     * What to do with a reservation once its operation ended (for `Effect.onExit` and
     * `Stream.ensuringWith`): given back when the operation failed or was interrupted before
     * `billable()` turned true (nothing the user got), kept otherwise.
     */
    const settleOn =
      (reservation: Reservation, billable: () => boolean) =>
      (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
        Exit.isSuccess(exit) || billable() ? Effect.void : release(reservation)

    return { take, release, settleOn } as const
  })
}) {}
