/**
 * The cost ledger in the database (`ai_calls`): what the cap reads and what billing reports use.
 * Calls in flight hold a reservation of their estimated cost in `usage_counters`
 * (`ai_spend_reserved`), given back once their entries are recorded.
 */
import { Effect, Layer } from "effect"
import { Db, queryWith, type TxClient } from "../db/db.ts"
import type { PrismaClient } from "../db/generated/client.ts"
import { addWith, lockWith, releaseWith, type Reservation, utcDayOf } from "../quota/quotas.ts"
import { AiLedger, type SpendAdmission } from "./ledger.ts"

const RESERVED = "ai_spend_reserved"

const settledSince = (client: PrismaClient | TxClient, userId: string, since: Date) =>
  queryWith(client, "aiCalls.spentSince", (c) =>
    c.aiCall.aggregate({ _sum: { costMicros: true }, where: { userId, createdAt: { gte: since } } })
  ).pipe(Effect.map((result) => result._sum.costMicros ?? 0))

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
          .pipe(Effect.asVoid, Effect.orDie),
      spentSince: (userId, since) =>
        Effect.zipWith(
          settledSince(db.client, userId, since),
          queryWith(db.client, "aiCalls.reserved", (c) =>
            c.usageCounter.findUnique({
              where: {
                userId_kind_day: { userId, kind: RESERVED, day: new Date(`${utcDayOf(since.getTime())}T00:00:00Z`) }
              },
              select: { used: true }
            })
          ),
          (settled, reserved) => settled + (reserved?.used ?? 0)
        ).pipe(Effect.orDie),
      reserve: (request) =>
        db
          .transaction("aiCalls.reserve", (tx) =>
            Effect.gen(function* () {
              const reservation: Reservation = {
                userId: request.userId,
                kind: RESERVED,
                day: utcDayOf(request.since.getTime()),
                amount: request.estimateMicros
              }
              // The day's reservation row is locked first, then the ledger is read: a call that
              // settles (records, then releases) waits for the lock, so nothing is counted out.
              const reserved = yield* lockWith(tx, reservation)
              const spent = reserved + (yield* settledSince(tx, request.userId, request.since))
              if (spent + request.estimateMicros > request.capMicros) {
                return { _tag: "Refused", spentMicros: spent } satisfies SpendAdmission
              }
              yield* addWith(tx, reservation)
              return {
                _tag: "Admitted",
                release: releaseWith(db.client, reservation).pipe(
                  Effect.catchAll((error) => Effect.logWarning("AI spend reservation not released", error))
                )
              } satisfies SpendAdmission
            })
          )
          .pipe(Effect.orDie)
    })
  })
)
