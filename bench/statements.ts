/**
 * CPU per SQL statement in this process, three ways to send the same hot worker statement (the
 * session's phase update, `sessions.advance`): Prisma's query builder (`updateMany`), Prisma's raw
 * SQL (`$executeRaw`), and node-postgres on a pool without Prisma. Issue #17 asks whether the hot
 * worker statements should bypass Prisma's client: this measures what that would save per
 * statement, as process CPU time (user + system: it survives a busy machine better than wall time),
 * interleaved in rounds so that load drifts hit each way alike. PostgreSQL's own time is the same
 * for all three and is not counted here.
 *
 * Then one AI call's spend admission with the cap on (the default): `AiLedgerDb`'s reserve +
 * release (one call of the `reserve_ai_spend` function, one DELETE, through the pool) beside the way
 * it was before, replayed here as the baseline (an interactive transaction of Prisma's client:
 * lock, expire, two sums, insert; then a `deleteMany`).
 *
 *   npm run bench:statements [-- --quick]   (BENCH_DATABASE_ADMIN_URL / TEST_DATABASE_ADMIN_URL)
 */
import { loadavg } from "node:os"
import { PrismaPg } from "@prisma/adapter-pg"
import { Effect, Layer, ManagedRuntime, Redacted } from "effect"
import pg from "pg"
import { AiLedgerDb } from "../src/core/ai/ledger-db.ts"
import { AiLedger } from "../src/core/ai/ledger.ts"
import { Db } from "../src/core/db/db.ts"
import { PrismaClient } from "../src/core/db/generated/client.ts"
import { newId } from "../src/core/db/ids.ts"
import { freshDatabase, median, ownCpuMs, table, withClient } from "./support.ts"

const quick = process.argv.includes("--quick")
const perRound = quick ? 300 : 1000
const rounds = quick ? 3 : 7

type Samples = Record<string, Array<{ cpu: number; wall: number }>>

/** Each way `perRound` times in turn, `rounds` times over (load drifts hit each alike), after a warm-up. */
const interleaved = async (ways: Record<string, () => Promise<unknown>>): Promise<Samples> => {
  // Warm-up: connections, Prisma's query plans, the JIT.
  for (const run of Object.values(ways)) for (let i = 0; i < 200; i++) await run()
  const samples: Samples = {}
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(ways)) {
      const cpu = ownCpuMs()
      const wall = performance.now()
      for (let i = 0; i < perRound; i++) await run()
      ;(samples[name] ??= []).push({
        cpu: (ownCpuMs() - cpu) / perRound,
        wall: (performance.now() - wall) / perRound
      })
    }
  }
  return samples
}

/** The medians per call, and each way's CPU against `base`'s. */
const perCall = (samples: Samples, base: string, unit: string) => {
  const baseCpu = median((samples[base] ?? []).map((sample) => sample.cpu))
  return table(
    ["way", `CPU µs/${unit}`, `× ${base.split(":")[0]}`, `wall µs/${unit}`],
    Object.entries(samples).map(([name, list]) => {
      const cpu = median(list.map((sample) => sample.cpu))
      return [
        name,
        (cpu * 1000).toFixed(0),
        (cpu / baseCpu).toFixed(2),
        (median(list.map((sample) => sample.wall)) * 1000).toFixed(0)
      ]
    })
  )
}

const { databaseUrl, drop } = await freshDatabase(`wingmate_bench_statements_${newId()}`)
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: 4 }) })
const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 })
const ledger = ManagedRuntime.make(
  AiLedgerDb.pipe(Layer.provide(Db.postgres({ url: Redacted.make(databaseUrl), poolMax: 4, migrate: false })))
)
try {
  const userId = newId()
  const sessionId = newId()
  await withClient(databaseUrl, async (client) => {
    await client.query("INSERT INTO users (id, clerk_id, updated_at) VALUES ($1, $2, now())", [
      userId,
      `bench-${userId}`
    ])
    await client.query(
      "INSERT INTO sessions (id, user_id, tone, language, updated_at) VALUES ($1, $2, 'playful', 'en', now())",
      [sessionId, userId]
    )
  })
  const timings = { ocr: 12 }
  const ways: Record<string, () => Promise<unknown>> = {
    "Prisma updateMany": () =>
      prisma.session.updateMany({
        where: { id: sessionId, status: { in: ["queued", "processing"] } },
        data: { status: "processing", phase: "ocr", timings }
      }),
    "Prisma $executeRaw": () =>
      prisma.$executeRaw`UPDATE sessions SET status = 'processing', phase = 'ocr', timings = ${JSON.stringify(timings)}::jsonb, updated_at = now()
        WHERE id = ${sessionId} AND status IN ('queued', 'processing')`,
    "pg pool.query": () =>
      pool.query(
        `UPDATE sessions SET status = 'processing', phase = 'ocr', timings = $1::jsonb, updated_at = now()
         WHERE id = $2 AND status IN ('queued', 'processing')`,
        [JSON.stringify(timings), sessionId]
      )
  }
  const samples = await interleaved(ways)
  const load = loadavg()
    .map((value) => value.toFixed(2))
    .join(" ")
  console.log(
    `\nCPU per statement in this process (median of ${rounds} rounds × ${perRound}; load average ${load}; ${new Date().toISOString()})\n`
  )
  console.log(perCall(samples, "pg pool.query", "statement"))

  // One AI call's spend admission, the cap on; a day's spend far below the cap, so every one is admitted.
  const since = new Date(Date.now() - 3_600_000)
  const request = () => ({
    userId,
    since,
    estimateMicros: 1_000,
    capMicros: 1_000_000_000_000,
    expiresAt: new Date(Date.now() + 60_000)
  })
  const admissions: Record<string, () => Promise<unknown>> = {
    "AiLedgerDb: reserve_ai_spend + DELETE (pool)": () =>
      ledger.runPromise(
        Effect.flatMap(AiLedger, (ledger) =>
          Effect.flatMap(ledger.reserve(request()), (admission) =>
            admission._tag === "Admitted" ? admission.release : Effect.void
          )
        )
      ),
    "baseline: Prisma interactive transaction + deleteMany": async () => {
      const { capMicros, estimateMicros, expiresAt } = request()
      const now = new Date()
      const id = await prisma.$transaction(async (tx) => {
        await tx.$queryRaw`SELECT id FROM users WHERE id = ${userId} FOR NO KEY UPDATE`
        await tx.aiSpendReservation.deleteMany({ where: { userId, expiresAt: { lte: now } } })
        const reserved = await tx.aiSpendReservation.aggregate({
          _sum: { amountMicros: true },
          where: { userId, expiresAt: { gt: now } }
        })
        const settled = await tx.aiCall.aggregate({
          _sum: { costMicros: true },
          where: { userId, createdAt: { gte: since } }
        })
        if ((reserved._sum.amountMicros ?? 0) + (settled._sum.costMicros ?? 0) + estimateMicros > capMicros) return null
        const created = await tx.aiSpendReservation.create({
          data: { userId, amountMicros: estimateMicros, expiresAt, createdAt: now },
          select: { id: true }
        })
        return created.id
      })
      if (id !== null) await prisma.aiSpendReservation.deleteMany({ where: { id } })
    }
  }
  console.log(
    `\nOne AI call's spend admission (reserve + release), CPU in this process (median of ${rounds} rounds × ${perRound})\n`
  )
  console.log(perCall(await interleaved(admissions), "AiLedgerDb: reserve_ai_spend + DELETE (pool)", "admission"))
} finally {
  await ledger.dispose()
  await prisma.$disconnect()
  await pool.end()
  await drop()
}
