/**
 * REST: an authenticated, database-backed `GET /api/v1/sessions?limit=20` on Wingmate
 * (`src/main/api.ts`) and on two baselines started in the same run, against the same database
 * and the same tokens: the seed's stack (Express 5 + Prisma 7, bench/baselines/express) and bare
 * node:http + pg (bench/baselines/raw, the limit). One process each, on free ports, logs to files.
 *
 * A fresh database (migrated with the project's migrations, dropped at the end) is seeded with
 * BENCH_USERS users × BENCH_SESSIONS sessions (1–3 images each, so the image count is real);
 * tokens are signed with a local key pair as the tests sign them, every server verifies them
 * with that public key (networkless). Before measuring, every server must answer 200 for every
 * user with the same body as Wingmate (first and second page). Then autocannon (in this
 * process: its CPU time is reported) loads each server in turn with one token per user
 * (rotating), after a warm-up, round after round in a rotating order.
 *
 *   npm run bench:rest                (5 rounds × 20 s per server)
 *   npm run bench:rest -- --quick     (3 rounds × 10 s)
 *   BENCH_CONNECTIONS (50), BENCH_USERS (50), BENCH_SESSIONS (40), BENCH_ROUNDS, BENCH_DURATION (s),
 *   BENCH_LOG_LEVEL (info: each server logs a line per request; warn: none do),
 *   BENCH_CPU_PROF=<dir> (node --cpu-prof on each server: <dir>/<server>.cpuprofile),
 *   BENCH_NODE_ARGS (more node flags for each server),
 *   BENCH_KEEP_LOGS=1 (keep the servers' log files), BENCH_ONLY=wingmate,raw (a subset),
 *   BENCH_DATABASE_ADMIN_URL (default TEST_DATABASE_ADMIN_URL or the local `postgres`).
 * Prints a table and writes bench/results/rest.json.
 */
import { isDeepStrictEqual } from "node:util"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import autocannon from "autocannon"
import { TEST_AUTHORIZED_PARTY, testKeys, tokenFor } from "../test/support/auth.ts"
import { freePort } from "../test/support/processes.ts"
import {
  baseEnv,
  cpuMsOf,
  freshDatabase,
  httpOk,
  median,
  ownCpuMs,
  root,
  type Running,
  start,
  stop,
  table,
  waitFor,
  withClient
} from "./support.ts"

const quick = process.argv.includes("--quick")
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? "50")
const userCount = Number(process.env["BENCH_USERS"] ?? "50")
const sessionsPerUser = Number(process.env["BENCH_SESSIONS"] ?? "40")
const rounds = Number(process.env["BENCH_ROUNDS"] ?? (quick ? "3" : "5"))
const durationS = Number(process.env["BENCH_DURATION"] ?? (quick ? "10" : "20"))
const warmupS = quick ? 3 : 8
const logLevel = process.env["BENCH_LOG_LEVEL"] ?? "info"
const cpuProfDir = process.env["BENCH_CPU_PROF"]
const only = process.env["BENCH_ONLY"]?.split(",")
const databaseName = `wingmate_bench_${process.pid}`
const path = "/api/v1/sessions?limit=20"

type ServerName = "wingmate" | "express" | "raw"
const NAMES: ReadonlyArray<ServerName> = ["wingmate", "express", "raw"]
const names = NAMES.filter((name) => only === undefined || only.includes(name))

const seed = (databaseUrl: string) =>
  withClient(databaseUrl, async (client) => {
    await client.query(
      `INSERT INTO users (id, clerk_id, email, created_at, updated_at)
       SELECT 'benchuser' || lpad(u::text, 5, '0'), 'user_bench_' || u, 'bench' || u || '@bench.test', now(), now()
       FROM generate_series(1, $1) AS u`,
      [userCount]
    )
    // Newest first must interleave statuses, tones and completion; created_at is distinct per user.
    await client.query(
      `INSERT INTO sessions (id, user_id, status, phase, error_code, tone, language, started_at, completed_at, created_at, updated_at)
       SELECT 'benchs' || lpad(u::text, 5, '0') || lpad(s::text, 5, '0'),
              'benchuser' || lpad(u::text, 5, '0'),
              (CASE WHEN s % 10 = 0 THEN 'failed' WHEN s % 17 = 0 THEN 'processing' ELSE 'completed' END)::session_status,
              CASE WHEN s % 17 = 0 AND s % 10 <> 0 THEN 'ocr' END,
              CASE WHEN s % 10 = 0 THEN 'AI_UNAVAILABLE' END,
              (ARRAY['playful', 'flirty', 'witty', 'sincere', 'bold'])[1 + s % 5],
              CASE WHEN s % 4 = 0 THEN 'fr' ELSE 'en' END,
              t, CASE WHEN s % 17 = 0 AND s % 10 <> 0 THEN NULL ELSE t + interval '3 seconds' END,
              t, t
       FROM generate_series(1, $1) AS u, generate_series(1, $2) AS s,
            LATERAL (SELECT date_trunc('milliseconds', now() - s * interval '37 minutes' - u * interval '7 milliseconds') AS t) AS at`,
      [userCount, sessionsPerUser]
    )
    await client.query(
      `INSERT INTO uploads (id, user_id, key, purpose, content_type, content_length, status, expires_at, created_at, updated_at)
       SELECT 'benchup' || substr(s.id, 7) || p, s.user_id, 'bench/' || s.id || '/' || p, 'session', 'image/png', 100000,
              'used', s.created_at + interval '5 minutes', s.created_at, s.created_at
       FROM sessions s, generate_series(0, 2) AS p
       WHERE p <= (length(s.id) + ascii(right(s.id, 1))) % 3`
    )
    await client.query(
      `INSERT INTO session_images (id, session_id, upload_id, position, created_at)
       SELECT 'benchimg' || substr(u.id, 8), 'benchs' || substr(u.id, 8, 10), u.id, right(u.id, 1)::int, u.created_at
       FROM uploads u`
    )
    await client.query("ANALYZE")
    const counts = await client.query<{ sessions: number; images: number }>(
      "SELECT (SELECT count(*)::int FROM sessions) AS sessions, (SELECT count(*)::int FROM session_images) AS images"
    )
    return counts.rows[0]
  })

interface Server {
  readonly name: ServerName
  readonly url: string
  readonly running: Running
}

interface RoundResult {
  readonly round: number
  readonly server: ServerName
  readonly requestsPerSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly requests: number
  readonly non2xx: number
  readonly errors: number
  readonly timeouts: number
  /** CPU ms per second of wall time, i.e. cores busy. */
  readonly serverCores: number | undefined
  readonly loadGeneratorCores: number
}

const workDir = mkdtempSync(join(tmpdir(), "wingmate-bench-rest-"))
const servers: Array<Server> = []
let dropDatabase: (() => Promise<unknown>) | undefined
const cleanup = async () => {
  await Promise.allSettled(servers.map((server) => stop(server.running)))
  await dropDatabase?.().catch(() => undefined)
  if (process.env["BENCH_KEEP_LOGS"] === undefined) rmSync(workDir, { recursive: true, force: true })
  else console.log(`Server logs kept in ${workDir}`)
}
process.once("SIGINT", () => {
  void cleanup().finally(() => process.exit(130))
})

const load = (server: Server, tokens: ReadonlyArray<string>, seconds: number) =>
  autocannon({
    url: server.url,
    connections,
    duration: seconds,
    // Each connection walks the users in turn: one request per token, then around again.
    requests: tokens.map((token) => ({ method: "GET", path, headers: { authorization: `Bearer ${token}` } }))
  })

const results: Array<RoundResult> = []
let exitCode = 0
try {
  const database = await freshDatabase(databaseName)
  dropDatabase = database.drop
  const seeded = await seed(database.databaseUrl)
  console.log(`Seeded ${userCount} users, ${seeded?.sessions} sessions, ${seeded?.images} session images`)

  const tokens = Array.from({ length: userCount }, (_, i) =>
    tokenFor({ clerkId: `user_bench_${i + 1}`, expiresIn: 7200 })
  )
  const common = {
    ...baseEnv(),
    NODE_ENV: "production",
    DATABASE_URL: database.databaseUrl,
    CLERK_JWT_KEY: testKeys.publicKeyPem,
    CLERK_AUTHORIZED_PARTIES: TEST_AUTHORIZED_PARTY,
    LOG_LEVEL: logLevel
  }
  for (const name of names) {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const env: NodeJS.ProcessEnv = { ...common, PORT: String(port) }
    let script = `bench/baselines/${name}/server.ts`
    let nodeArgs: Array<string> = []
    if (name === "wingmate") {
      script = "src/main/api.ts"
      Object.assign(env, {
        HOST: "127.0.0.1",
        LOG_FORMAT: "json",
        DATA_DIR: join(workDir, "data"),
        PUBLIC_BASE_URL: url,
        // Production refuses local storage and needs the webhook secret; neither is on this path.
        ALLOW_EMBEDDED_IN_PRODUCTION: "true",
        // Production needs Redis (the sessions queue); GET requests never touch it here.
        REDIS_URL: process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379",
        // The whole load comes from one address (a fleet of phones would not): rate limits off,
        // as the baselines have none.
        RATE_LIMIT_ENABLED: "false",
        // One address opens every connection here.
        HTTP_MAX_CONNECTIONS_PER_ADDRESS: "0",
        CLERK_WEBHOOK_SIGNING_SECRET: "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtbm90LXVzZWQ="
      })
    }
    if (cpuProfDir !== undefined) {
      mkdirSync(cpuProfDir, { recursive: true })
      nodeArgs = ["--cpu-prof", "--cpu-prof-dir", cpuProfDir, "--cpu-prof-name", `${name}.cpuprofile`]
    }
    nodeArgs.push(...(process.env["BENCH_NODE_ARGS"]?.split(" ").filter((arg) => arg !== "") ?? []))
    const running = start(name, script, env, join(workDir, `${name}.log`), nodeArgs)
    servers.push({ name, url, running })
  }
  for (const server of servers) {
    await waitFor(`${server.name} ready`, httpOk(`${server.url}/health/ready`), server.running)
  }
  console.log(`Servers: ${servers.map((server) => `${server.name} pid ${server.running.pid}`).join(", ")}`)

  // Correctness first: every user's first page (and a second page) is 200 and identical everywhere.
  const get = async (server: Server, token: string, query: string) => {
    const response = await fetch(`${server.url}/api/v1/sessions${query}`, {
      headers: { authorization: `Bearer ${token}` }
    })
    return { status: response.status, body: (await response.json()) as unknown }
  }
  const isPage = (body: unknown): body is { success: true; data: { items: Array<unknown>; nextCursor: string } } => {
    if (typeof body !== "object" || body === null || !("success" in body) || body.success !== true) return false
    const data = "data" in body ? body.data : undefined
    return (
      typeof data === "object" &&
      data !== null &&
      "items" in data &&
      Array.isArray(data.items) &&
      data.items.length === Math.min(20, sessionsPerUser) &&
      "nextCursor" in data &&
      (sessionsPerUser > 20 ? typeof data.nextCursor === "string" : data.nextCursor === null)
    )
  }
  for (const [index, token] of tokens.entries()) {
    const reference = await get(servers[0] as Server, token, "?limit=20")
    if (reference.status !== 200 || !isPage(reference.body)) {
      throw new Error(
        `${servers[0]?.name}: user ${index + 1} got ${reference.status} ${JSON.stringify(reference.body)}`
      )
    }
    const second = `?limit=20&cursor=${reference.body.data.nextCursor}`
    const referenceSecond = index < 3 ? await get(servers[0] as Server, token, second) : undefined
    for (const server of servers.slice(1)) {
      const answer = await get(server, token, "?limit=20")
      if (answer.status !== 200 || !isDeepStrictEqual(answer.body, reference.body)) {
        throw new Error(`${server.name}: user ${index + 1} got ${answer.status}, not the reference page`)
      }
      if (referenceSecond !== undefined) {
        const next = await get(server, token, second)
        if (next.status !== 200 || !isDeepStrictEqual(next.body, referenceSecond.body)) {
          throw new Error(`${server.name}: user ${index + 1}'s second page differs`)
        }
      }
    }
  }
  console.log(`Checked: ${userCount} users' first pages (and 3 second pages) are 200 and identical on every server`)

  for (const server of servers) {
    const warm = await load(server, tokens, warmupS)
    if (warm.non2xx > 0 || warm.errors > 0) {
      throw new Error(`${server.name}: warm-up had ${warm.non2xx} non-2xx and ${warm.errors} errors`)
    }
  }
  console.log(
    `Load: autocannon in this process, ${connections} connections, ${durationS} s × ${rounds} rounds per server (warm-up ${warmupS} s)\n`
  )
  for (let round = 0; round < rounds; round++) {
    // A rotating order, so no server always runs first (or right after another's load).
    const order = servers.map((_, i) => servers[(i + round) % servers.length] as Server)
    for (const server of order) {
      const serverCpu = cpuMsOf(server.running.pid)
      const ownCpu = ownCpuMs()
      const started = performance.now()
      const result = await load(server, tokens, durationS)
      const wallMs = performance.now() - started
      const serverCpuAfter = cpuMsOf(server.running.pid)
      const row: RoundResult = {
        round: round + 1,
        server: server.name,
        requestsPerSecond: result.requests.total / result.duration,
        p50Ms: result.latency.p50,
        p99Ms: result.latency.p99,
        requests: result.requests.total,
        non2xx: result.non2xx,
        errors: result.errors,
        timeouts: result.timeouts,
        serverCores:
          serverCpu === undefined || serverCpuAfter === undefined ? undefined : (serverCpuAfter - serverCpu) / wallMs,
        loadGeneratorCores: (ownCpuMs() - ownCpu) / wallMs
      }
      results.push(row)
      console.log(
        `round ${row.round} ${server.name.padEnd(8)} ${row.requestsPerSecond.toFixed(0).padStart(6)} req/s  p50 ${row.p50Ms} ms  p99 ${row.p99Ms} ms  non-2xx ${row.non2xx}  errors ${row.errors}`
      )
    }
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error)
  exitCode = 1
} finally {
  await cleanup()
}

const summary = names.flatMap((name) => {
  const mine = results.filter((row) => row.server === name)
  if (mine.length === 0) return []
  const cores = mine.flatMap((row) => (row.serverCores === undefined ? [] : [row.serverCores]))
  const requestsPerSecond = median(mine.map((row) => row.requestsPerSecond))
  return [
    {
      server: name,
      requestsPerSecond,
      p50Ms: median(mine.map((row) => row.p50Ms)),
      p99Ms: median(mine.map((row) => row.p99Ms)),
      requests: mine.reduce((sum, row) => sum + row.requests, 0),
      non2xx: mine.reduce((sum, row) => sum + row.non2xx, 0),
      errors: mine.reduce((sum, row) => sum + row.errors, 0),
      serverCores: cores.length === 0 ? undefined : median(cores),
      /** Server CPU per request, in µs. */
      serverCpuUsPerRequest: cores.length === 0 ? undefined : (median(cores) * 1e6) / requestsPerSecond,
      loadGeneratorCores: median(mine.map((row) => row.loadGeneratorCores))
    }
  ]
})
const rateOf = (name: ServerName) => summary.find((row) => row.server === name)?.requestsPerSecond
const wingmate = rateOf("wingmate")
const express = rateOf("express")
const raw = rateOf("raw")
const ratios = {
  wingmateOverExpress: wingmate !== undefined && express !== undefined ? wingmate / express : undefined,
  wingmateOverRaw: wingmate !== undefined && raw !== undefined ? wingmate / raw : undefined
}

if (summary.length > 0) {
  console.log(
    `\nREST GET ${path} (${process.version}, ${availableParallelism()} cores, load ${loadavg()
      .map((value) => value.toFixed(1))
      .join(" ")}, ${new Date().toISOString()}${quick ? ", quick" : ""}; medians of ${rounds} rounds)\n`
  )
  console.log(
    table(
      [
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "errors",
        "server cores",
        "server CPU µs/req",
        "autocannon cores"
      ],
      summary.map((row) => [
        row.server,
        row.requestsPerSecond.toFixed(0),
        row.p50Ms.toFixed(0),
        row.p99Ms.toFixed(0),
        String(row.non2xx),
        String(row.errors),
        row.serverCores?.toFixed(2) ?? "–",
        row.serverCpuUsPerRequest?.toFixed(0) ?? "–",
        row.loadGeneratorCores.toFixed(2)
      ])
    )
  )
  const ratio = (value: number | undefined) => (value === undefined ? "–" : `${value.toFixed(2)}×`)
  console.log(
    `\nWingmate ÷ Express: ${ratio(ratios.wingmateOverExpress)} (goal ≥ 1.5×)   Wingmate ÷ raw: ${ratio(ratios.wingmateOverRaw)} (goal ≥ 0.5×)`
  )
}

mkdirSync(join(root, "bench/results"), { recursive: true })
writeFileSync(
  join(root, "bench/results/rest.json"),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      cores: availableParallelism(),
      load: loadavg(),
      quick,
      path,
      connections,
      users: userCount,
      sessionsPerUser,
      rounds,
      durationS,
      warmupS,
      logLevel,
      summary,
      ratios,
      perRound: results,
      ok: exitCode === 0
    },
    null,
    2
  )
)
process.exit(exitCode)
