/**
 * What authentication costs per request: the signature check by @clerk/backend (cold), the
 * verified-token cache (warm), and the whole middleware path (token + Clerk id → user) once warm.
 * Prints a table and writes bench/results/auth.json.   Run: npm run bench:auth
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { verifyToken } from "@clerk/backend"
import { ConfigProvider, Effect, Layer, Logger, LogLevel } from "effect"
import { generateKeyPair, signJwt } from "../src/core/auth/jwt.ts"
import { TokenVerifier } from "../src/core/auth/token-verifier.ts"
import { AppConfig } from "../src/core/config.ts"
import { Db } from "../src/core/db/db.ts"
import { Erasure } from "../src/core/erasure.ts"
import { RateLimiter } from "../src/core/rate-limit/rate-limiter.ts"
import { UsersService } from "../src/modules/users/users.service.ts"

const keys = generateKeyPair()
const now = Math.floor(Date.now() / 1000)
const token = signJwt(keys.privateKeyPem, { sub: "user_bench", iat: now, nbf: now - 5, exp: now + 3600, azp: "app" })
const options = { jwtKey: keys.publicKeyPem, authorizedParties: ["app"], clockSkewMs: 5000 }

interface Row {
  readonly name: string
  readonly iterations: number
  readonly meanMicros: number
  readonly p50Micros: number
  readonly p99Micros: number
}

const measure = async (name: string, iterations: number, run: () => Promise<unknown>): Promise<Row> => {
  for (let i = 0; i < Math.min(200, iterations); i++) await run()
  const samples: Array<number> = []
  for (let i = 0; i < iterations; i++) {
    const started = process.hrtime.bigint()
    await run()
    samples.push(Number(process.hrtime.bigint() - started) / 1000)
  }
  samples.sort((a, b) => a - b)
  const at = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0
  return {
    name,
    iterations,
    meanMicros: samples.reduce((sum, x) => sum + x, 0) / samples.length,
    p50Micros: at(0.5),
    p99Micros: at(0.99)
  }
}

const program = Effect.gen(function* () {
  const verifier = yield* TokenVerifier
  const users = yield* UsersService
  const runtime = yield* Effect.runtime<never>()
  const runPromise = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromiseExit(effect.pipe(Effect.provide(runtime)))

  const rows: Array<Row> = []
  rows.push(
    yield* Effect.promise(() =>
      measure("@clerk/backend verifyToken (cold path)", 2_000, () => verifyToken(token, options))
    )
  )
  rows.push(
    yield* Effect.promise(() => measure("TokenVerifier.verify, warm", 50_000, () => runPromise(verifier.verify(token))))
  )
  rows.push(
    yield* Effect.promise(() =>
      measure("verify + Clerk id → user, warm (the middleware's work)", 50_000, () =>
        runPromise(Effect.flatMap(verifier.verify(token), users.resolve))
      )
    )
  )
  return rows
})

const config = Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NODE_ENV", "test"]])))
const rows = await Effect.runPromise(
  program.pipe(
    Effect.provide(
      Layer.mergeAll(TokenVerifier.fromOptions(options), UsersService.Default).pipe(
        Layer.provide(Db.pglite("memory://")),
        Layer.provide(Erasure.Default),
        Layer.provide(RateLimiter.inMemory()),
        Layer.provideMerge(AppConfig.Default),
        Layer.provide(config),
        Layer.provide(Logger.minimumLogLevel(LogLevel.Warning))
      )
    )
  )
)

const cold = rows[0]?.meanMicros ?? 0
console.log(`\nAuthentication cost per request (${process.version}, ${new Date().toISOString()})\n`)
console.log("| path | iterations | mean µs | p50 µs | p99 µs | vs cold |")
console.log("| --- | ---: | ---: | ---: | ---: | ---: |")
for (const row of rows) {
  console.log(
    `| ${row.name} | ${row.iterations} | ${row.meanMicros.toFixed(1)} | ${row.p50Micros.toFixed(1)} | ${row.p99Micros.toFixed(1)} | ${(row.meanMicros / cold).toFixed(3)}× |`
  )
}
mkdirSync("bench/results", { recursive: true })
writeFileSync(
  "bench/results/auth.json",
  JSON.stringify({ at: new Date().toISOString(), node: process.version, rows }, null, 2)
)
