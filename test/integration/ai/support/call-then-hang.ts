/**
 * A process to kill in the middle of an AI call (spend-reservations.test.ts): the real chain on the
 * database ledger, admitted under the spend cap, then waiting on a provider that never answers.
 * Prints `admitted` once the provider was called (its reservation is then held and renewing).
 *
 *   node test/integration/ai/support/call-then-hang.ts <DATABASE_URL> <userId> <capMicros> <timeoutMs>
 */
import { Console, Effect, Layer, Redacted, Schema, Stream } from "effect"
import { AiLedgerDb } from "../../../../src/core/ai/ledger-db.ts"
import { DEFAULT_PRICES } from "../../../../src/core/ai/ledger.ts"
import type { AiProvider } from "../../../../src/core/ai/provider.ts"
import { AiStrategy } from "../../../../src/core/ai/strategy.ts"
import { Db } from "../../../../src/core/db/db.ts"

const [url = "", userId = "", cap = "0", timeoutMs = "0"] = process.argv.slice(2)

const hanging: AiProvider = {
  id: "gpt-4o",
  model: "gpt-test",
  timeoutMs: Number(timeoutMs),
  generate: () => Effect.zipRight(Console.log("admitted"), Effect.never),
  stream: () => Stream.never
}

const program = Effect.gen(function* () {
  const ai = yield* AiStrategy.make({
    providers: [hanging],
    prices: DEFAULT_PRICES,
    breaker: { failures: 5, cooldownMs: 1_000 },
    dailyCapMicros: Number(cap)
  })
  yield* ai.generateObject(
    { feature: "openers", userId },
    { schema: Schema.Struct({ ok: Schema.Boolean }), prompt: "x", maxOutputTokens: 100 }
  )
}).pipe(
  Effect.provide(AiLedgerDb.pipe(Layer.provide(Db.postgres({ url: Redacted.make(url), poolMax: 2, migrate: false }))))
)

Effect.runFork(program)
