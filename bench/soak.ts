/**
 * `npm run soak`: mixed flows across 2 api and 2 worker processes for a bounded time, with the four
 * faults injected at planned times, then the goals checked (issue #20).
 *
 * Runs on this machine's PostgreSQL (a fresh database, dropped at the end) and a PRIVATE redis-server
 * on a free port (the Redis restart kills it; the shared one is never touched), with the providers of
 * `bench:latency` (wire fakes paced by the Gemini 2.5 Flash profile, each in its own process: Gemini
 * primary, OpenAI fallback). Every virtual user loops over the documented mix (bench/README.md, "Soak")
 * against the two api instances, and its session progress is followed over `/ws` on the other
 * instance, some clients cutting their own connection and resuming with `afterSeq`.
 *
 * Faults (at fractions of the load window): `kill -9` of a worker while jobs run (a replacement is
 * started, as a supervisor would); the private Redis killed and started again (empty); every
 * PostgreSQL connection of the processes terminated (`pg_terminate_backend`); the primary provider
 * answering 503 for a while (the fallback runs). A fault is recovered when every session in flight
 * at its injection has ended and a session created after it cleared has completed.
 *
 * Goals (exit code 1 when one fails): sessions lost 0, duplicates 0 (events per follower, rows in the
 * database), 5xx 0 outside the fault windows, every cut client reaches its session's end, every fault
 * recovered, RSS of each process that ran throughout not growing more than MEMORY_TOLERANCE between
 * the first and last third. Writes bench/results/soak.json and prints a summary.
 *
 *   npm run soak                (32 users, 10 minutes)
 *   npm run soak -- --quick     (16 users, 2 minutes of load; about 3 minutes in all)
 *   npm run soak -- --ci        (8 users, 1 minute of load; CI's short form)
 *   SOAK_USERS, SOAK_SECONDS, SOAK_SEED override; BENCH_DATABASE_ADMIN_URL as the other benches.
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Redis as IORedis } from "ioredis"
import { startPrivateRedis, type PrivateRedis } from "../test/support/redis-server.ts"
import {
  appEnv,
  appNodeArgs,
  baseEnv,
  devToken,
  distinctChatImages,
  endRun,
  freePort,
  freshDatabase,
  httpOk,
  memoryOf,
  cpuMsOf,
  percentile,
  type Running,
  sleep,
  start,
  table,
  waitFor,
  withClient,
  writeResult
} from "./support.ts"
import {
  type ApiClient,
  call,
  type Followed,
  follow,
  openersOverWs,
  type Recorder,
  streamPost,
  upload
} from "./soak/clients.ts"

const mode = process.argv.includes("--ci") ? "ci" : process.argv.includes("--quick") ? "quick" : "full"
const defaults = {
  ci: { users: 8, seconds: 60, warmup: 10 },
  quick: { users: 16, seconds: 120, warmup: 20 },
  full: { users: 32, seconds: 600, warmup: 30 }
}[mode]
const userCount = Number(process.env["SOAK_USERS"] ?? defaults.users)
const loadSeconds = Number(process.env["SOAK_SECONDS"] ?? defaults.seconds)
const seed = Number(process.env["SOAK_SEED"] ?? "20")
/**
 * RSS of a process that ran throughout: the last third's mean at most this much above the first
 * third's. The CI form's 60 s are still the heap's warm-up (12–21% measured on healthy code), so
 * it only catches a gross leak there; the quick and full runs hold the 25%.
 */
const MEMORY_TOLERANCE = mode === "ci" ? 0.5 : 0.25
/** After the load: how long sessions still running get to end. */
const DRAIN_MS = 90_000
/** A 5xx this close after a fault's window still belongs to it (requests in flight at recovery). */
const WINDOW_SLACK_S = 2
const runId = randomBytes(4).toString("hex")
const queuePrefix = `wm-soak-${runId}`
const databaseName = `wingmate_soak_${runId}`

/** Deterministic randomness (mulberry32): the same seed, the same mix. */
const random = (() => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
})()

/** The mix: what a virtual user does next (weights sum to 1; bench/README.md documents it). */
const MIX = [
  { flow: "session", weight: 0.45 },
  { flow: "openers-sse", weight: 0.2 },
  { flow: "openers-ws", weight: 0.15 },
  { flow: "history", weight: 0.2 }
] as const
type Flow = (typeof MIX)[number]["flow"]
const pickFlow = (): Flow => {
  let r = random()
  for (const entry of MIX) {
    if (r < entry.weight) return entry.flow
    r -= entry.weight
  }
  return "history"
}
/** A session follower that cuts its own connection mid-session (then resumes with afterSeq). */
const CUT_SHARE = 0.3
/** A completed session that is regenerated (half of them over SSE). */
const REGENERATE_SHARE = 0.4
/** A stream of openers (SSE or WS) aborted by the client after its first delta. */
const ABORT_SHARE = 0.3

const t0 = performance.now()
const clock = () => (performance.now() - t0) / 1000
const recorder: Recorder = {
  clock,
  replies: [],
  wsUnplanned: 0,
  redisEpoch: 0,
  openersUnfinished: [],
  repeats: []
}
const dataDir = mkdtempSync(join(tmpdir(), "wingmate-soak-"))
/** The processes' logs: removed after a run whose goals hold, kept (and named) after one that fails. */
// The api and worker processes run with the image's Node flags, as deployed: V8 sizes its heap, and
// so the RSS this run judges, by them (bench/README.md, "Soak"). BENCH_NODE_ARGS replaces them
// (a diagnosis: add `--heapsnapshot-signal=SIGUSR2`).
const processNodeArgs = { api: appNodeArgs("api"), worker: appNodeArgs("worker") }
const logDir = mkdtempSync(join(tmpdir(), "wingmate-soak-logs-"))
const children: Array<Running> = []
let dropDatabase: (() => Promise<unknown>) | undefined
let redis: PrivateRedis | undefined

const cleanup = async () => {
  await endRun({ children, redis: undefined, queuePrefix, sessionIds: [], dropDatabase, dataDir })
  await redis?.stop()
}
process.once("SIGINT", () => {
  void cleanup().finally(() => process.exit(130))
})
// Bounded in time whatever happens: the load, the drain, then a margin for starting and checking.
const watchdog = setTimeout(
  () => {
    console.error("soak: over its time bound, stopping")
    void cleanup().finally(() => process.exit(1))
  },
  (loadSeconds + DRAIN_MS / 1000 + 180) * 1000
)
watchdog.unref()

const commit = (() => {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"]).toString().trim()
  } catch {
    return "unknown"
  }
})()

interface FaultRecord {
  readonly kind: "worker-kill" | "redis-restart" | "pg-terminate" | "provider-outage"
  readonly atS: number
  /** When the fault itself ended (Redis back, outage over; the kill and the termination are instants). */
  clearedAtS: number
  recoveredAfterS: number | null
  readonly inFlight: number
  detail: string
}

const followed: Array<Followed> = []
const faults: Array<FaultRecord> = []
const memory: Array<{ readonly atS: number; readonly name: string; readonly rssMiB: number; readonly cpuMs: number }> =
  []
const flows: Record<string, number> = {}
const outcomes: Record<string, number> = {}
const count = (into: Record<string, number>, key: string) => (into[key] = (into[key] ?? 0) + 1)

const loadAtStart = loadavg()
let loadStartS = 0
let loadEndS = 0
let redisFootprint: Record<string, unknown> = {}
let pgFootprint: Record<string, unknown> = {}
let dbCheck = {
  lost: 0,
  duplicateRows: 0,
  statuses: {} as Record<string, number>,
  missing: 0,
  lostSessions: [] as Array<Record<string, unknown>>
}
let failedToRun: string | undefined

try {
  redis = await startPrivateRedis()
  const fresh = await freshDatabase(databaseName)
  dropDatabase = fresh.drop
  const images = await distinctChatImages(12)

  // The providers, each in its own process (bench:latency's): Gemini primary, OpenAI fallback.
  const fakeOf = async (provider: string) => {
    const fake = start(
      `fake-${provider}`,
      "bench/latency-fake.ts",
      { ...baseEnv(), BENCH_FAKE_PROVIDER: provider },
      join(logDir, `fake-${provider}.log`)
    )
    children.push(fake)
    await waitFor(`${provider} fake listening`, () => Promise.resolve(/listening (\S+)/.test(fake.output())), fake)
    return { running: fake, url: /listening (\S+)/.exec(fake.output())?.[1] ?? "" }
  }
  const gemini = await fakeOf("gemini")
  const openai = await fakeOf("openai")

  const env = (port: number, role: string): NodeJS.ProcessEnv => {
    const url = new URL(fresh.databaseUrl)
    url.searchParams.set("application_name", `${queuePrefix}-${role}`)
    return {
      ...appEnv({
        databaseUrl: url.toString(),
        redisUrl: redis?.url ?? "",
        queuePrefix,
        dataDir,
        port,
        provider: "gemini-flash",
        providerEnv: {
          GEMINI_API_KEY: "soak-key",
          GEMINI_BASE_URL: gemini.url,
          OPENAI_API_KEY: "soak-key",
          OPENAI_BASE_URL: openai.url
        },
        sessionsAtOnce: 20
      }),
      AI_PROVIDER_STRATEGY_FALLBACKS: "gpt-4o",
      // Rate limiting on (its Redis keys are part of the footprint), with limits the soak never reaches.
      RATE_LIMIT_ENABLED: "true",
      RATE_LIMIT_REST_USER: "100000/60s",
      RATE_LIMIT_REST_IP: "100000/60s",
      RATE_LIMIT_WS_CONNECT_USER: "100000/60s",
      RATE_LIMIT_WS_CONNECT_IP: "100000/60s",
      RATE_LIMIT_WS_MESSAGE_CONNECTION: "100000/60s",
      RATE_LIMIT_WS_MESSAGE_USER: "100000/60s",
      RATE_LIMIT_WS_MESSAGE_IP: "100000/60s",
      SESSIONS_DAILY_LIMIT: "10000",
      OPENERS_DAILY_LIMIT: "10000",
      REGENERATIONS_DAILY_LIMIT: "10000",
      // A killed worker's job is taken over within seconds, not the default 30-60 s.
      QUEUE_LOCK_DURATION_MS: "10000",
      QUEUE_STALLED_INTERVAL_MS: "5000",
      // A session whose job Redis lost (a worker killed, then Redis restarted empty before its stalled
      // job was taken over: 12 s apart in the CI form) is enqueued again within 20 s, not 2-4 minutes:
      // the run's drain is 90 s.
      SESSION_RECONCILE_SECONDS: "10",
      // Followers whose progress buffer died with Redis end from the database.
      SESSION_EVENTS_DB_CHECK_MS: "2000"
    }
  }

  const apis: Array<ApiClient & { readonly running: Running }> = []
  for (const index of [0, 1]) {
    const port = await freePort()
    const running = start(
      `api${index}`,
      "src/main/api.ts",
      env(port, `api${index}`),
      join(logDir, `api${index}.log`),
      processNodeArgs.api
    )
    children.push(running)
    apis.push({ index, url: `http://127.0.0.1:${port}`, running })
  }
  const startWorker = async (name: string) => {
    const running = start(name, "src/main/worker.ts", env(0, name), join(logDir, `${name}.log`), processNodeArgs.worker)
    children.push(running)
    await waitFor(`${name} consuming`, () => Promise.resolve(running.output().includes("Consumer started")), running)
    return running
  }
  const workers = [await startWorker("worker0"), await startWorker("worker1")]
  for (const api of apis) await waitFor(`${api.running.name} ready`, httpOk(`${api.url}/health/ready`), api.running)

  const tokens = await Promise.all(Array.from({ length: userCount }, (_, i) => devToken(dataDir, `soak-${runId}-${i}`)))
  const redisBaseline = await redisMemory(redis.url)

  // ---- the load ----------------------------------------------------------------------------------
  // The users start with a warm-up (JIT, pools, caches) that the window's measures leave out.
  loadStartS = clock() + defaults.warmup
  const loadEnd = loadStartS + loadSeconds
  const think = () => sleep(300 + random() * 900)

  const sessionFlow = async (user: number, api: ApiClient, token: string, image: Buffer) => {
    const uploadId = await upload(recorder, api, token, image)
    if (uploadId === undefined) return count(outcomes, "session: upload refused")
    const createStarted = performance.now()
    const created = await call(recorder, api, token, "POST", "/api/v1/sessions", "POST /sessions", {
      uploadIds: [uploadId]
    })
    const id = created.data?.["id"]
    if (created.status !== 202 || typeof id !== "string") return count(outcomes, `session: create ${created.status}`)
    const session: Followed = {
      sessionId: id,
      createdAtS: clock(),
      firstDeltaMs: undefined,
      endedAtS: undefined,
      end: undefined,
      cut: false,
      connections: 0,
      lastSeq: 0,
      duplicates: 0,
      seqReused: 0,
      seqRenumbered: 0,
      terminals: 0,
      streamErrors: 0,
      trace: []
    }
    followed.push(session)
    // Followed on the other instance: progress crosses instances through Redis.
    const cutAfter = random() < CUT_SHARE ? 1 + Math.floor(random() * 4) : undefined
    await follow(recorder, apis, (user + 1) % apis.length, token, session, createStarted, cutAfter, 120_000)
    count(outcomes, `session: ${session.end ?? "?"}`)
    const read = await call(recorder, api, token, "GET", `/api/v1/sessions/${id}`, "GET /sessions/:id")
    const suggestions = read.data?.["suggestions"]
    const first = Array.isArray(suggestions) ? (suggestions[0] as { id?: unknown } | undefined) : undefined
    if (session.end !== "completed" || typeof first?.id !== "string") return
    await think()
    await call(recorder, api, token, "POST", `/api/v1/sessions/${id}/suggestions/${first.id}/like`, "POST like")
    if (random() < REGENERATE_SHARE) {
      await think()
      if (random() < 0.5) {
        const regenerated = await call(
          recorder,
          api,
          token,
          "POST",
          `/api/v1/sessions/${id}/suggestions`,
          "POST regenerate",
          {
            tone: "playful"
          }
        )
        count(outcomes, `regenerate: ${regenerated.status}`)
      } else {
        const streamed = await streamPost(
          recorder,
          api,
          token,
          `/api/v1/sessions/${id}/suggestions`,
          "POST regenerate (SSE)",
          { tone: "witty" },
          false
        )
        count(outcomes, `regenerate SSE: ${streamed.status} ${streamed.terminal ?? "no end"}`)
      }
    }
  }

  const virtualUser = async (user: number) => {
    const token = tokens[user] ?? ""
    const api = apis[user % apis.length]
    if (api === undefined) return
    let images_used = 0
    let requests = 0
    // Users start spread over the first seconds, not all at once.
    await sleep(random() * 3000)
    while (clock() < loadEnd) {
      const flow = pickFlow()
      count(flows, flow)
      switch (flow) {
        case "session": {
          const image = images[images_used++ % images.length]
          if (image !== undefined) await sessionFlow(user, api, token, image.bytes)
          break
        }
        case "openers-sse": {
          const abort = random() < ABORT_SHARE
          const streamed = await streamPost(
            recorder,
            api,
            token,
            "/api/v1/magic-openers/generate",
            "POST openers (SSE)",
            { profile: { name: "Sam", bio: "Trail runner, coffee snob, two cats" }, count: 2 },
            abort
          )
          count(
            outcomes,
            `openers SSE: ${streamed.status} ${streamed.aborted ? "aborted" : (streamed.terminal ?? "no end")}`
          )
          break
        }
        case "openers-ws": {
          const how = await openersOverWs(
            recorder,
            apis[(user + 1) % apis.length] ?? api,
            token,
            `soak-${user}-${requests++}`,
            random() < ABORT_SHARE
          )
          count(outcomes, `openers WS: ${how}`)
          break
        }
        case "history": {
          await call(recorder, api, token, "GET", "/api/v1/sessions?limit=20", "GET /sessions")
          await call(recorder, api, token, "GET", "/api/v1/magic-openers?limit=20", "GET /magic-openers")
          await call(recorder, api, token, "GET", "/api/v1/users/me", "GET /users/me")
          break
        }
      }
      await think()
    }
  }

  // ---- memory, every 2 s ----------------------------------------------------------------------
  let sampling = true
  const sampler = (async () => {
    while (sampling) {
      for (const running of [
        ...apis.map((api) => api.running),
        ...children.filter((c) => c.name.startsWith("worker"))
      ]) {
        if (running.child.exitCode !== null || running.child.signalCode !== null) continue
        const rss = memoryOf(running.pid)?.rssMiB
        if (rss !== undefined && Number.isFinite(rss) && clock() >= loadStartS)
          memory.push({ atS: clock(), name: running.name, rssMiB: rss, cpuMs: cpuMsOf(running.pid) ?? Number.NaN })
      }
      await sleep(2000)
    }
  })()

  // ---- faults -------------------------------------------------------------------------------------
  const inFlight = () => followed.filter((session) => session.end === undefined)
  /** Every session in flight at the injection ended, and one created after `clearedAtS` completed. */
  const watchRecovery = async (fault: FaultRecord, before: ReadonlyArray<Followed>) => {
    const deadline = clock() + 90
    while (clock() < deadline) {
      const drained = before.every((session) => session.end !== undefined)
      const fresh = followed.some((session) => session.createdAtS > fault.clearedAtS && session.end === "completed")
      const ready = await Promise.all(apis.map((api) => httpOk(`${api.url}/health/ready`)().catch(() => false)))
      if (drained && fresh && ready.every(Boolean)) {
        fault.recoveredAfterS = clock() - fault.atS
        return
      }
      await sleep(250)
    }
  }
  const watchers: Array<Promise<void>> = []
  const inject = async (kind: FaultRecord["kind"], act: () => Promise<string>) => {
    // Mid-job: wait (a few seconds at most) until sessions are running.
    for (let i = 0; i < 40 && inFlight().length < 2; i++) await sleep(250)
    const before = inFlight()
    const fault: FaultRecord = {
      kind,
      atS: clock(),
      clearedAtS: clock(),
      recoveredAfterS: null,
      inFlight: before.length,
      detail: ""
    }
    faults.push(fault)
    fault.detail = await act()
    fault.clearedAtS = clock()
    watchers.push(watchRecovery(fault, before))
  }
  const faultPlan: ReadonlyArray<readonly [number, FaultRecord["kind"], () => Promise<string>]> = [
    [
      0.15,
      "worker-kill",
      async () => {
        const victim = workers[0]
        if (victim === undefined) return "no worker"
        const died = new Promise((resolve) => victim.child.once("exit", resolve))
        victim.child.kill("SIGKILL")
        await died
        // A supervisor starts a replacement.
        workers[0] = await startWorker("worker2")
        return `kill -9 ${victim.name}, ${workers[0].name} started`
      }
    ],
    [
      0.35,
      "redis-restart",
      async () => {
        await redis?.kill()
        await sleep(2000)
        // The new numbering begins with the new server: events of the old one still on their way at
        // the kill arrive in its 2 s down, under the old epoch (flipping at the kill counted one of
        // them, seen again with the same seq and content from a re-run job, as a duplicate).
        recorder.redisEpoch++
        await redis?.restart()
        return "private redis-server killed (nothing saved), down 2 s, started empty on the same port"
      }
    ],
    [
      0.55,
      "pg-terminate",
      async () => {
        let terminated = 0
        for (let round = 0; round < 3; round++) {
          terminated += await withClient(fresh.databaseUrl, async (client) => {
            const result = await client.query(
              `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE $1`,
              [`${queuePrefix}-%`]
            )
            return result.rowCount ?? 0
          })
          await sleep(300)
        }
        return `${terminated} connections of the api and worker processes terminated in 3 rounds`
      }
    ],
    [
      0.72,
      "provider-outage",
      async () => {
        gemini.running.child.kill("SIGUSR1")
        await sleep(Math.max(5, loadSeconds * 0.08) * 1000)
        gemini.running.child.kill("SIGUSR2")
        return `primary (Gemini fake) answered 503 for ${Math.max(5, loadSeconds * 0.08).toFixed(0)} s`
      }
    ]
  ]
  const faultRunner = (async () => {
    for (const [share, kind, act] of faultPlan) {
      const at = loadStartS + share * loadSeconds
      if (clock() < at) await sleep((at - clock()) * 1000)
      await inject(kind, act)
    }
  })()

  await Promise.all(Array.from({ length: userCount }, (_, user) => virtualUser(user)))
  loadEndS = loadEnd
  // The drain: sessions still followed end (their followers are bounded), faults finish recovering.
  let drainTimer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([
    faultRunner.then(() => Promise.all(watchers)),
    new Promise((resolve) => (drainTimer = setTimeout(resolve, DRAIN_MS)))
  ])
  // Not left pending: the process ends when the report is written, not 90 s later.
  clearTimeout(drainTimer)
  sampling = false
  await sampler

  // ---- what the stores say ------------------------------------------------------------------------
  dbCheck = await withClient(fresh.databaseUrl, async (client) => {
    const ids = followed.map((session) => session.sessionId)
    const statuses = await client.query<{ status: string; n: string }>(
      "SELECT status, count(*) AS n FROM sessions WHERE id = ANY($1::text[]) GROUP BY status",
      [ids]
    )
    const byStatus = Object.fromEntries(statuses.rows.map((row) => [row.status, Number(row.n)]))
    const found = Object.values(byStatus).reduce((sum, n) => sum + n, 0)
    const duplicateTranscript = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT session_id, position FROM transcript_messages
         GROUP BY session_id, position HAVING count(*) > 1) AS d`
    )
    const duplicateSuggestions = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT session_id, batch, position FROM suggestions
         GROUP BY session_id, batch, position HAVING count(*) > 1) AS d`
    )
    // A batch with more than the three lines asked for: a batch saved twice under other positions.
    const overfullBatches = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM (SELECT session_id, batch FROM suggestions
         GROUP BY session_id, batch HAVING count(*) > 3) AS d`
    )
    const open = await client.query<{ id: string; status: string; phase: string | null; created_at: Date }>(
      "SELECT id, status, phase, created_at FROM sessions WHERE id = ANY($1::text[]) AND status IN ('queued', 'processing')",
      [ids]
    )
    const lostSessions = open.rows.map((row) => {
      const client = followed.find((session) => session.sessionId === row.id)
      return {
        id: row.id,
        status: row.status,
        phase: row.phase,
        createdAtS: client === undefined ? undefined : Math.round((client.createdAtS - loadStartS) * 10) / 10,
        clientEnd: client?.end,
        lastSeq: client?.lastSeq
      }
    })
    return {
      lostSessions,
      statuses: byStatus,
      lost: (byStatus["queued"] ?? 0) + (byStatus["processing"] ?? 0) + (ids.length - found),
      missing: ids.length - found,
      duplicateRows:
        Number(duplicateTranscript.rows[0]?.n ?? 0) +
        Number(duplicateSuggestions.rows[0]?.n ?? 0) +
        Number(overfullBatches.rows[0]?.n ?? 0)
    }
  })
  pgFootprint = await postgresFootprint(fresh.databaseUrl, followed.length)
  redisFootprint = {
    baselineUsedBytes: redisBaseline,
    ...(await redisKeys(redis.url, queuePrefix, new Set(followed.map((session) => session.sessionId))))
  }
} catch (error) {
  failedToRun = error instanceof Error ? (error.stack ?? error.message) : String(error)
} finally {
  await cleanup()
}
clearTimeout(watchdog)

// ---- the report -----------------------------------------------------------------------------------
async function redisMemory(url: string): Promise<number> {
  const client = new IORedis(url)
  try {
    const info = await client.info("memory")
    return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN)
  } finally {
    client.disconnect()
  }
}

/** Every key of the private Redis by kind, with MEMORY USAGE: bytes per progress buffer, per kept job, per rate-limit key. */
async function redisKeys(
  url: string,
  prefix: string,
  sessionIds: ReadonlySet<string>
): Promise<Record<string, unknown>> {
  const client = new IORedis(url)
  try {
    const kinds: Record<string, { keys: number; bytes: number; owners: Set<string> }> = {}
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "COUNT", 1000)
      cursor = next
      for (const key of keys) {
        const bytes = Number((await client.memory("USAGE", key)) ?? 0)
        // A job's keys and a progress buffer's carry the session id (the job id is the session's).
        const owner = key.split(":").find((part) => sessionIds.has(part))
        const kind = key.startsWith("wingmate:progress:")
          ? "progress"
          : key.startsWith("wingmate:ratelimit:")
            ? "rateLimit"
            : key.startsWith(`${prefix}:`) && owner !== undefined
              ? "queueJob"
              : key.startsWith(`${prefix}:`)
                ? "queueShared"
                : "other"
        const entry = (kinds[kind] ??= { keys: 0, bytes: 0, owners: new Set() })
        entry.keys++
        entry.bytes += bytes
        entry.owners.add(owner ?? key)
      }
    } while (cursor !== "0")
    const info = await client.info("memory")
    return {
      usedBytes: Number(/used_memory:(\d+)/.exec(info)?.[1] ?? Number.NaN),
      byKind: Object.fromEntries(
        Object.entries(kinds).map(([kind, entry]) => [
          kind,
          {
            keys: entry.keys,
            bytes: entry.bytes,
            owners: entry.owners.size,
            bytesPerOwner: Math.round(entry.bytes / entry.owners.size)
          }
        ])
      )
    }
  } finally {
    client.disconnect()
  }
}

/** Each table's size (heap, indexes, TOAST) and live rows at the end, and bytes per session created. */
async function postgresFootprint(url: string, sessions: number): Promise<Record<string, unknown>> {
  return withClient(url, async (client) => {
    await client.query("ANALYZE")
    const tables = await client.query<{ relname: string; bytes: string; rows: string }>(
      `SELECT relname, pg_total_relation_size(relid) AS bytes, n_live_tup AS rows
       FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC`
    )
    const total = tables.rows.reduce((sum, row) => sum + Number(row.bytes), 0)
    // A small run's relation sizes are mostly empty pages and index roots: the rows' own size (tuple
    // with its header, TOAST included) is what grows per session.
    const tupleBytes: Record<string, number> = {}
    for (const row of tables.rows) {
      if (Number(row.rows) === 0) continue
      const avg = await client.query<{ avg: string | null }>(
        `SELECT avg(pg_column_size(t.*)) AS avg FROM "${row.relname}" AS t`
      )
      tupleBytes[row.relname] = Math.round(Number(avg.rows[0]?.avg ?? 0))
    }
    return {
      sessions,
      totalBytes: total,
      tables: Object.fromEntries(
        tables.rows.map((row) => [
          row.relname,
          { bytes: Number(row.bytes), rows: Number(row.rows), avgTupleBytes: tupleBytes[row.relname] ?? null }
        ])
      )
    }
  })
}

const loadAtEnd = loadavg()
const durationS = loadEndS - loadStartS
const inWindow = (atS: number) =>
  faults.some((fault) => atS >= fault.atS && atS <= fault.atS + (fault.recoveredAfterS ?? 90) + WINDOW_SLACK_S)
const fiveXX = recorder.replies.filter((reply) => reply.status >= 500)
const fiveXXOutside = fiveXX.filter((reply) => !inWindow(reply.atS))
const noAnswerOutside = recorder.replies.filter((reply) => reply.status === 0 && !inWindow(reply.atS))
const completed = followed.filter((session) => session.end === "completed")
const failed = followed.filter((session) => session.end === "failed" || session.end === "cancelled")
const eventDuplicates = followed.reduce(
  (sum, session) => sum + session.duplicates + Math.max(0, session.terminals - 1),
  0
)
const cutUnfinished = followed.filter(
  (session) => session.cut && (session.end === undefined || session.end === "timeout")
)
const firstDelta = completed.flatMap((session) => (session.firstDeltaMs === undefined ? [] : [session.firstDeltaMs]))
const completedInLoad = completed.filter(
  (session) => (session.endedAtS ?? 0) >= loadStartS && (session.endedAtS ?? 0) <= loadEndS
).length

/** Memory trend of each process that ran from the load's start to its end (not the replacement worker). */
const third = durationS / 3
const throughout = [...new Set(memory.map((sample) => sample.name))].filter((name) => {
  const times = memory.filter((sample) => sample.name === name).map((sample) => sample.atS)
  return Math.min(...times) <= loadStartS + 3 && Math.max(...times) >= loadEndS - 3
})
const trend = throughout.flatMap((name) => {
  const mean = (from: number, to: number) => {
    const samples = memory.filter((s) => s.name === name && s.atS >= from && s.atS < to).map((s) => s.rssMiB)
    return samples.length === 0 ? undefined : samples.reduce((a, b) => a + b, 0) / samples.length
  }
  const first = mean(loadStartS, loadStartS + third)
  const last = mean(loadEndS - third, loadEndS)
  return first === undefined || last === undefined
    ? []
    : [{ name, firstThirdMiB: first, lastThirdMiB: last, growth: last / first - 1 }]
})
const peakOf = (prefix: string) =>
  Math.max(
    0,
    ...memory
      .filter((sample) => sample.name.startsWith(prefix) && Number.isFinite(sample.rssMiB))
      .map((sample) => sample.rssMiB)
  )

// A stream the server accepted ends with its terminal event (`final`, `failed`, `opener.done`,
// `opener.error`), faults or not: one cut without it leaves the app waiting.
const streamsWithoutEnd = Object.entries(outcomes)
  .filter(([outcome]) => / SSE: 200 no end$/.test(outcome) || /^openers WS: (closed|timeout)$/.test(outcome))
  .reduce((sum, [, n]) => sum + n, 0)

const goals = [
  { goal: "sessions lost", target: "0", value: dbCheck.lost, ok: dbCheck.lost === 0 },
  {
    goal: "accepted streams without their end",
    target: "0",
    value: streamsWithoutEnd,
    ok: streamsWithoutEnd === 0
  },
  {
    goal: "duplicates (events + rows)",
    target: "0",
    value: eventDuplicates + dbCheck.duplicateRows,
    ok: eventDuplicates + dbCheck.duplicateRows === 0
  },
  { goal: "5xx outside fault windows", target: "0", value: fiveXXOutside.length, ok: fiveXXOutside.length === 0 },
  {
    goal: "no answer outside fault windows",
    target: "0",
    value: noAnswerOutside.length,
    ok: noAnswerOutside.length === 0
  },
  {
    goal: "cut clients not at their session's end",
    target: "0",
    value: cutUnfinished.length,
    ok: cutUnfinished.length === 0
  },
  {
    goal: "faults not recovered (of 4)",
    target: "0",
    value: 4 - faults.filter((f) => f.recoveredAfterS !== null).length,
    ok: faults.length === 4 && faults.every((f) => f.recoveredAfterS !== null)
  },
  {
    goal: `RSS growth first→last third (max, %)`,
    target: `≤ ${MEMORY_TOLERANCE * 100}`,
    value: Math.round(Math.max(0, ...trend.map((t) => t.growth)) * 100),
    ok: trend.length > 0 && trend.every((t) => t.growth <= MEMORY_TOLERANCE)
  },
  {
    goal: "the run itself",
    target: "ran",
    value: failedToRun === undefined ? "ran" : "failed",
    ok: failedToRun === undefined
  }
]

const result = {
  at: new Date().toISOString(),
  commit,
  mode,
  seed,
  node: process.version,
  cores: availableParallelism(),
  load: { start: loadAtStart, end: loadAtEnd },
  durationS: Math.round(durationS),
  users: userCount,
  processes: { api: 2, worker: 2 },
  mix: Object.fromEntries(MIX.map((entry) => [entry.flow, entry.weight])),
  flows,
  outcomes,
  sessionsCreated: followed.length,
  sessionsCompleted: completed.length,
  sessionsFailed: failed.length,
  sessionsLost: dbCheck.lost,
  lostSessions: dbCheck.lostSessions,
  sessionsPerMinute: Math.round((completedInLoad / Math.max(1, durationS)) * 60 * 10) / 10,
  duplicates: eventDuplicates + dbCheck.duplicateRows,
  duplicatesDetail: {
    events: eventDuplicates,
    rows: dbCheck.duplicateRows,
    seqReused: followed.reduce((s, f) => s + f.seqReused, 0),
    seqRenumberedAfterRedisRestart: followed.reduce((s, f) => s + f.seqRenumbered, 0),
    repeats: recorder.repeats.slice(0, 20)
  },
  databaseStatuses: dbCheck.statuses,
  requests: recorder.replies.length,
  http5xx: fiveXX.length,
  http5xxOutsideFaults: fiveXXOutside.length,
  streamsWithoutEnd,
  /** Every 5xx: when (s from the window's start), which route, on which api. Inside a window, 503 is expected. */
  http5xxList: fiveXX.map((reply) => ({
    atS: Math.round((reply.atS - loadStartS) * 10) / 10,
    status: reply.status,
    route: reply.route,
    api: reply.api,
    inFaultWindow: inWindow(reply.atS)
  })),
  httpNoAnswer: recorder.replies.filter((reply) => reply.status === 0).length,
  httpByStatus: recorder.replies.reduce<Record<string, number>>((into, reply) => {
    into[String(reply.status)] = (into[String(reply.status)] ?? 0) + 1
    return into
  }, {}),
  wsDisconnectsUnplanned: recorder.wsUnplanned,
  /** `error` SERVICE_UNAVAILABLE frames on a followed session's socket (its stream failed; the client resubscribed). */
  wsStreamErrors: followed.reduce((sum, session) => sum + session.streamErrors, 0),
  cutClients: followed.filter((session) => session.cut).length,
  cutClientsUnfinished: cutUnfinished.length,
  /** Openers over `/ws` without a terminal frame, with what their connection saw. */
  openersUnfinished: recorder.openersUnfinished.map((opener) => ({
    ...opener,
    startedAtS: Math.round((opener.startedAtS - loadStartS) * 10) / 10
  })),
  /** Followers that never reached their session's end, with what each connection saw. */
  followersUnfinished: followed
    .filter((session) => session.end === undefined || session.end === "timeout")
    .slice(0, 5)
    .map((session) => ({ sessionId: session.sessionId, createdAtS: session.createdAtS, trace: session.trace })),
  firstSuggestionMs: {
    p50: Math.round(percentile(firstDelta, 0.5)),
    p99: Math.round(percentile(firstDelta, 0.99)),
    n: firstDelta.length
  },
  rssMiB: { api: Math.round(peakOf("api")), worker: Math.round(peakOf("worker")) },
  memoryTrend: trend.map((t) => ({
    ...t,
    firstThirdMiB: Math.round(t.firstThirdMiB),
    lastThirdMiB: Math.round(t.lastThirdMiB),
    growth: Math.round(t.growth * 1000) / 1000
  })),
  memoryTolerance: MEMORY_TOLERANCE,
  /** CPU time (user + system) each process spent in the window (between its first and last sample), ms. */
  cpuMsInWindow: Object.fromEntries(
    [...new Set(memory.map((sample) => sample.name))].map((name) => {
      const samples = memory.filter((sample) => sample.name === name && sample.atS <= loadEndS)
      return [name, Math.round((samples.at(-1)?.cpuMs ?? 0) - (samples[0]?.cpuMs ?? 0))]
    })
  ),
  /** Every RSS sample (s from the window's start, MiB), per process. */
  memorySamples: Object.fromEntries(
    [...new Set(memory.map((sample) => sample.name))].map((name) => [
      name,
      memory
        .filter((sample) => sample.name === name)
        .map((sample) => [Math.round(sample.atS - loadStartS), Math.round(sample.rssMiB)])
    ])
  ),
  faults: faults.map((fault) => ({
    kind: fault.kind,
    atS: Math.round((fault.atS - loadStartS) * 10) / 10,
    recoveredAfterS: fault.recoveredAfterS === null ? null : Math.round(fault.recoveredAfterS * 10) / 10,
    inFlight: fault.inFlight,
    detail: fault.detail
  })),
  footprint: { redis: redisFootprint, postgres: pgFootprint },
  goals: goals.map((goal) => ({ goal: goal.goal, target: goal.target, value: goal.value, ok: goal.ok })),
  ...(failedToRun === undefined ? {} : { error: failedToRun })
}
writeResult("soak", result)

console.log(
  `\nSoak (${mode}: ${userCount} users, ${result.durationS} s of load, 2 api + 2 workers; ${process.version}, ` +
    `${availableParallelism()} cores, load ${loadAtStart.map((l) => l.toFixed(2)).join(" ")} → ` +
    `${loadAtEnd.map((l) => l.toFixed(2)).join(" ")}; commit ${commit}; seed ${seed})\n`
)
console.log(
  table(
    ["sessions", "created", "completed", "failed", "lost", "per minute", "first delta p50 ms", "p99 ms"],
    [
      [
        "",
        String(result.sessionsCreated),
        String(result.sessionsCompleted),
        String(result.sessionsFailed),
        String(result.sessionsLost),
        String(result.sessionsPerMinute),
        String(result.firstSuggestionMs.p50),
        String(result.firstSuggestionMs.p99)
      ]
    ]
  )
)
console.log()
console.log(
  table(
    ["fault", "at s", "in flight", "recovered after s", "what"],
    result.faults.map((fault) => [
      fault.kind,
      fault.atS.toFixed(1),
      String(fault.inFlight),
      fault.recoveredAfterS?.toFixed(1) ?? "never",
      fault.detail
    ])
  )
)
console.log()
console.log(
  `requests ${result.requests} (${Object.entries(result.httpByStatus)
    .map(([s, n]) => `${s}: ${n}`)
    .join(", ")}); ` +
    `ws unplanned disconnects ${result.wsDisconnectsUnplanned}; cut clients ${result.cutClients}; ` +
    `RSS peak MiB api ${result.rssMiB.api}, worker ${result.rssMiB.worker}`
)
console.log(`flows ${JSON.stringify(flows)}\noutcomes ${JSON.stringify(outcomes)}\n`)
console.log(
  table(
    ["goal", "target", "value", "ok"],
    goals.map((g) => [g.goal, g.target, String(g.value), g.ok ? "yes" : "NO"])
  )
)
if (failedToRun !== undefined) console.error(`\nThe soak did not run to its end:\n${failedToRun}`)
if (goals.some((goal) => !goal.ok)) {
  process.exitCode = 1
  // What the clients saw of each stream without its end, beside the logs that say what the server did.
  for (const opener of result.openersUnfinished)
    console.error(`opener over /ws without its end: ${JSON.stringify(opener)}`)
  for (const session of result.followersUnfinished)
    console.error(`follower without its end: ${JSON.stringify(session)}`)
  console.error(`\nsoak: a goal failed; the processes' logs are kept in ${logDir}`)
} else rmSync(logDir, { recursive: true, force: true })
