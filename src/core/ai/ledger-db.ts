/** The cost ledger in the database (`ai_calls`): what the cap reads and what billing reports use. */
import { Effect, Layer } from "effect"
import { Db } from "../db/db.ts"
import { AiLedger } from "./ledger.ts"

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
        db
          .query("aiCalls.spentSince", (c) =>
            c.aiCall.aggregate({ _sum: { costMicros: true }, where: { userId, createdAt: { gte: since } } })
          )
          .pipe(
            Effect.map((result) => result._sum.costMicros ?? 0),
            Effect.orDie
          )
    })
  })
)
