/**
 * The cost ledger in the database (`ai_calls`): what the cap reads and what billing reports use.
 * Calls in flight hold a reservation of their estimated cost, one row each in
 * `ai_spend_reservations` with an expiry the call renews while it runs; a row counts only until
 * its expiry and is deleted once the call's entries are recorded. A process killed mid-call leaves
 * its row behind: it stops counting at its expiry, and the user's next admission deletes it.
 */
import { Clock, Effect, Layer } from "effect"
import { Db, isForeignKeyViolation, queryWith, type TxClient } from "../db/db.ts"
import type { PrismaClient } from "../db/generated/client.ts"
import { AiLedger, type SpendAdmission } from "./ledger.ts"

type Client = PrismaClient | TxClient

/** The foreign key of an entry's user (prisma/migrations). */
const USER_FOREIGN_KEY = "ai_calls_user_id_fkey"

const settledSince = (client: Client, userId: string, since: Date) =>
  queryWith(client, "aiCalls.spentSince", (c) =>
    c.aiCall.aggregate({ _sum: { costMicros: true }, where: { userId, createdAt: { gte: since } } })
  ).pipe(Effect.map((result) => result._sum.costMicros ?? 0))

/** What the user's reservations alive at `now` hold. */
const reservedAt = (client: Client, userId: string, now: Date) =>
  queryWith(client, "aiSpendReservations.live", (c) =>
    c.aiSpendReservation.aggregate({ _sum: { amountMicros: true }, where: { userId, expiresAt: { gt: now } } })
  ).pipe(Effect.map((result) => result._sum.amountMicros ?? 0))

/**
 * Spent plus reserved. The reservations are read first, the ledger second: a call settles by
 * recording its entries, then deleting its reservation, so whichever moment each read sees, the
 * call is counted at least once (a read the other way round could miss it between the two).
 */
const spentAt = (client: Client, userId: string, since: Date, now: Date) =>
  Effect.gen(function* () {
    const reserved = yield* reservedAt(client, userId, now)
    return reserved + (yield* settledSince(client, userId, since))
  })

/**
 * The user's row locked for the rest of the transaction: admissions of one user run one at a
 * time. `FOR NO KEY UPDATE` does not conflict with the key-share locks that inserts referencing the
 * user take (the ledger's own entries), only with another admission or an update of the row.
 */
const lockUser = (tx: TxClient, userId: string) =>
  queryWith(
    tx,
    "aiSpendReservations.lock",
    (c) => c.$queryRaw<Array<{ id: string }>>`SELECT id FROM users WHERE id = ${userId} FOR NO KEY UPDATE`
  )

export const AiLedgerDb = Layer.effect(
  AiLedger,
  Effect.gen(function* () {
    const db = yield* Db
    return AiLedger.of({
      record: (entry) =>
        db
          .query("aiCalls.create", (c) =>
            c.aiCall.create({
              data: {
                userId: entry.userId ?? null,
                sessionId: entry.sessionId ?? null,
                feature: entry.feature,
                provider: entry.provider,
                model: entry.model,
                inputTokens: entry.inputTokens,
                outputTokens: entry.outputTokens,
                costMicros: entry.costMicros,
                latencyMs: entry.latencyMs,
                ttftMs: entry.ttftMs ?? null,
                outcome: entry.outcome,
                errorKind: entry.errorKind ?? null,
                createdAt: entry.at
              }
            })
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
          Effect.flatMap((now) => spentAt(db.client, userId, since, new Date(now))),
          Effect.orDie
        ),
      reserve: (request) =>
        Effect.gen(function* () {
          const now = new Date(yield* Clock.currentTimeMillis)
          return yield* db.transaction("aiSpendReservations.reserve", (tx) =>
            Effect.gen(function* () {
              const locked = yield* lockUser(tx, request.userId)
              // The user was erased after the call was let in (a job already running, a request
              // already authenticated): no reservation can name a user who is gone, and there is
              // no cap left to protect. The call goes on; what it then writes for the user is refused.
              if (locked.length === 0) {
                return { _tag: "Admitted", release: Effect.void, renew: () => Effect.void } satisfies SpendAdmission
              }
              // Reservations of calls whose process died: they count for nothing already, and go here.
              yield* queryWith(tx, "aiSpendReservations.expire", (c) =>
                c.aiSpendReservation.deleteMany({ where: { userId: request.userId, expiresAt: { lte: now } } })
              )
              const spent = yield* spentAt(tx, request.userId, request.since, now)
              if (spent + request.estimateMicros > request.capMicros) {
                return { _tag: "Refused", spentMicros: spent } satisfies SpendAdmission
              }
              const { id } = yield* queryWith(tx, "aiSpendReservations.create", (c) =>
                c.aiSpendReservation.create({
                  data: {
                    userId: request.userId,
                    amountMicros: request.estimateMicros,
                    expiresAt: request.expiresAt,
                    createdAt: now
                  },
                  select: { id: true }
                })
              )
              return {
                _tag: "Admitted",
                release: db
                  .query("aiSpendReservations.delete", (c) => c.aiSpendReservation.deleteMany({ where: { id } }))
                  .pipe(
                    Effect.asVoid,
                    // Not given back: it stops counting at its expiry all the same.
                    Effect.catchAll((error) => Effect.logWarning("AI spend reservation not released", error))
                  ),
                renew: (expiresAt) =>
                  Clock.currentTimeMillis.pipe(
                    Effect.flatMap((at) =>
                      db.query("aiSpendReservations.renew", (c) =>
                        // A reservation already expired (or deleted) stays so: an update of nothing.
                        c.aiSpendReservation.updateMany({
                          where: { id, expiresAt: { gt: new Date(at) } },
                          data: { expiresAt }
                        })
                      )
                    ),
                    Effect.asVoid,
                    Effect.catchAll((error) => Effect.logWarning("AI spend reservation not renewed", error))
                  )
              } satisfies SpendAdmission
            })
          )
        }).pipe(Effect.orDie)
    })
  })
)
