/**
 * The cost ledger in the database (`ai_calls`): what the cap reads and what billing reports use.
 * Calls in flight hold a reservation of their estimated cost, one row each in
 * `ai_spend_reservations` with an expiry the call renews while it runs; a row counts only until
 * its expiry and is deleted once the call's entries are recorded. A process killed mid-call leaves
 * its row behind: it stops counting at its expiry, and the user's next admission deletes it.
 *
 * Every statement is raw SQL through `Db.sql` (the pool on PostgreSQL, not Prisma's client): with
 * the cap on (the default) each AI call runs an admission, a record and a release, and a session
 * makes two calls. The admission is one call of `reserve_ai_spend` (prisma/migrations), which was
 * an interactive transaction of seven statements (issue #17, bench/README.md "The spend cap").
 */
import { Clock, Effect, Layer } from "effect"
import { Db, isForeignKeyViolation } from "../db/db.ts"
import { Prisma } from "../db/generated/client.ts"
import { newId } from "../db/ids.ts"
import { AiLedger, type SpendAdmission } from "./ledger.ts"

/** The foreign key of an entry's user (prisma/migrations). */
const USER_FOREIGN_KEY = "ai_calls_user_id_fkey"

/** A sum as node-postgres (text) or Prisma's raw query (bigint) returns it. */
type Sum = string | bigint | number | null

export const AiLedgerDb = Layer.effect(
  AiLedger,
  Effect.gen(function* () {
    const db = yield* Db
    return AiLedger.of({
      record: (entry) =>
        db
          .sql(
            "aiCalls.create",
            Prisma.sql`INSERT INTO ai_calls (id, user_id, session_id, feature, provider, model, input_tokens,
                output_tokens, cost_micros, latency_ms, ttft_ms, outcome, error_kind, created_at)
              VALUES (${newId()}, ${entry.userId ?? null}, ${entry.sessionId ?? null}, ${entry.feature},
                ${entry.provider}, ${entry.model}, ${entry.inputTokens}, ${entry.outputTokens}, ${entry.costMicros},
                ${entry.latencyMs}, ${entry.ttftMs ?? null}, ${entry.outcome}, ${entry.errorKind ?? null}, ${entry.at})`
          )
          .pipe(
            Effect.asVoid,
            // The user was erased while the call ran (its row is gone): what the entry would hold
            // would have gone with the account, so there is nothing to keep and nothing went wrong.
            Effect.catchIf(
              (error) => isForeignKeyViolation(error, USER_FOREIGN_KEY),
              () => Effect.logInfo("AI call not recorded: its account was erased meanwhile")
            ),
            Effect.orDie
          ),
      spentSince: (userId, since) =>
        Clock.currentTimeMillis.pipe(
          Effect.flatMap((now) =>
            // One statement, one snapshot: a call that settles meanwhile (its entries recorded, then
            // its reservation deleted) is counted once, or twice, never missed.
            db.sql<{ readonly spent: Sum }>(
              "aiCalls.spentSince",
              Prisma.sql`SELECT
                  COALESCE((SELECT SUM(amount_micros) FROM ai_spend_reservations
                            WHERE user_id = ${userId} AND expires_at > ${new Date(now)}), 0)
                + COALESCE((SELECT SUM(cost_micros) FROM ai_calls
                            WHERE user_id = ${userId} AND created_at >= ${since}), 0) AS spent`
            )
          ),
          Effect.map(([row]) => Number(row?.spent ?? 0)),
          Effect.orDie
        ),
      reserve: (request) =>
        Effect.gen(function* () {
          const now = new Date(yield* Clock.currentTimeMillis)
          const id = newId()
          const [row] = yield* db.sql<{ readonly outcome: string; readonly spent_micros: Sum }>(
            "aiSpendReservations.reserve",
            Prisma.sql`SELECT outcome, spent_micros FROM reserve_ai_spend(${request.userId}, ${id},
              ${request.estimateMicros}::integer, ${request.capMicros}::bigint, ${request.since}::timestamp(3),
              ${now}::timestamp(3), ${request.expiresAt}::timestamp(3))`
          )
          if (row?.outcome === "refused") {
            return { _tag: "Refused", spentMicros: Number(row.spent_micros ?? 0) } satisfies SpendAdmission
          }
          // "gone": the user was erased after the call was let in (a job already running, a request
          // already authenticated): no reservation can name a user who is gone, and there is no cap
          // left to protect. The call goes on; what it then writes for the user is refused.
          if (row?.outcome !== "admitted") {
            return { _tag: "Admitted", release: Effect.void, renew: () => Effect.void } satisfies SpendAdmission
          }
          return {
            _tag: "Admitted",
            release: db
              .sql("aiSpendReservations.delete", Prisma.sql`DELETE FROM ai_spend_reservations WHERE id = ${id}`)
              .pipe(
                Effect.asVoid,
                // Not given back: it stops counting at its expiry all the same.
                Effect.catchAll((error) => Effect.logWarning("AI spend reservation not released", error))
              ),
            renew: (expiresAt) =>
              Clock.currentTimeMillis.pipe(
                Effect.flatMap((at) =>
                  // A reservation already expired (or deleted) stays so: an update of nothing.
                  db.sql(
                    "aiSpendReservations.renew",
                    Prisma.sql`UPDATE ai_spend_reservations SET expires_at = ${expiresAt}
                      WHERE id = ${id} AND expires_at > ${new Date(at)}`
                  )
                ),
                Effect.asVoid,
                Effect.catchAll((error) => Effect.logWarning("AI spend reservation not renewed", error))
              )
          } satisfies SpendAdmission
        }).pipe(Effect.orDie)
    })
  })
)
