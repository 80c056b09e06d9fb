/**
 * CPU per SQL statement in this process, three ways to send the same hot worker statement (the
 * session's phase update, `sessions.advance`): Prisma's query builder (`updateMany`), Prisma's raw
 * SQL (`$executeRaw`), and node-postgres on a pool without Prisma. Issue #17 asks whether the hot
 * worker statements should bypass Prisma's client: this measures what that would save per
 * statement, as process CPU time (user + system: it survives a busy machine better than wall time),
 * interleaved in rounds so that load drifts hit each way alike. PostgreSQL's own time is the same
 * for all three and is not counted here.
 *
 *   npm run bench:statements [-- --quick]   (BENCH_DATABASE_ADMIN_URL / TEST_DATABASE_ADMIN_URL)
 */
import { loadavg } from "node:os"
import { PrismaPg } from "@prisma/adapter-pg"
import pg from "pg"
import { PrismaClient } from "../src/core/db/generated/client.ts"
import { newId } from "../src/core/db/ids.ts"
import { freshDatabase, median, ownCpuMs, table, withClient } from "./support.ts"

const quick = process.argv.includes("--quick")
const perRound = quick ? 300 : 1000
const rounds = quick ? 3 : 7

const { databaseUrl, drop } = await freshDatabase(`wingmate_bench_statements_${newId()}`)
const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl, max: 4 }) })
const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 })
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
  // Warm-up: connections, Prisma's query plans, the JIT.
  for (const run of Object.values(ways)) for (let i = 0; i < 200; i++) await run()

  const samples: Record<string, Array<{ cpu: number; wall: number }>> = {}
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
  const load = loadavg()
    .map((value) => value.toFixed(2))
    .join(" ")
  console.log(
    `\nCPU per statement in this process (median of ${rounds} rounds × ${perRound}; load average ${load}; ${new Date().toISOString()})\n`
  )
  const base = median((samples["pg pool.query"] ?? []).map((sample) => sample.cpu))
  console.log(
    table(
      ["way", "CPU µs/statement", "× pg", "wall µs/statement"],
      Object.entries(samples).map(([name, list]) => {
        const cpu = median(list.map((sample) => sample.cpu))
        return [
          name,
          (cpu * 1000).toFixed(0),
          (cpu / base).toFixed(2),
          (median(list.map((sample) => sample.wall)) * 1000).toFixed(0)
        ]
      })
    )
  )
} finally {
  await prisma.$disconnect()
  await pool.end()
  await drop()
}
