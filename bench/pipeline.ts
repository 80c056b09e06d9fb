/**
 * The Sessions pipeline's own overhead, end to end through the real processes: `src/main/api.ts`
 * and one `src/main/worker.ts` on a fresh, migrated PostgreSQL database (dropped at the end),
 * BullMQ and the progress bus on Redis (a unique QUEUE_PREFIX), local storage in a temporary
 * DATA_DIR shared by both, dev tokens from scripts/dev-token.ts, and an OpenAI wire fake as the
 * only provider (gpt-4o primary and fallback: no local OCR): its non-streamed (vision) answers are
 * a transcript JSON at once, its streamed answers three suggestion lines paced like a real model
 * (one delta per 4 characters every 6 ms: ~167 tokens/s).
 *
 * Per round: upload one distinct chat screenshot per session (not timed; every image differs, checked
 * by hash, so no session skips the vision call through the OCR cache) and open the round
 * user's WebSocket (`/ws`, authenticated with the dev token: the app keeps its socket open), then
 * create every session at once; each is followed over the socket (`subscribe`, `afterSeq: 0`, sent
 * as soon as its create answers) and timed from the start of its create request to its first
 * `delta` session.event and to `completed`. Each round uses a new dev user, so no OCR result is
 * reused. In the same run, after each round, raw sharp does the normalisation work on the same
 * images (resize to IMAGE_MAX_EDGE, encode, thumbnail at IMAGE_THUMBNAIL_EDGE), all submitted at
 * once and run IMAGE_CONCURRENCY at a time; each image's completion is timed from that batch's
 * start. Overhead = the pipeline's first-delta p50 (p99) minus raw sharp's completion p50 (p99):
 * what the pipeline adds beyond the image work the same batch needs on the same cores.
 * Prints tables and writes bench/results/pipeline.json.
 *
 *   npm run bench:pipeline               (20 sessions × 3 rounds)
 *   npm run bench:pipeline -- --quick    (10 sessions × 1 round)
 *   BENCH_SESSIONS, BENCH_ROUNDS override; BENCH_DELTAS=words streams one delta per word at once, BENCH_DELTAS=pieces
 *   ~3 pieces at once (the default, paced, is BENCH_DELTAS=paced); BENCH_CPU_PROF=<dir> profiles the api and the worker
 *   (node --cpu-prof, written when they exit; the file names carry the pids printed at start); BENCH_DATABASE_ADMIN_URL (default: TEST_DATABASE_ADMIN_URL or
 *   postgresql://postgres@127.0.0.1:5432/postgres), REDIS_URL (default redis://127.0.0.1:6379).
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { Effect } from "effect"
import { Redis as IORedis } from "ioredis"
import pg from "pg"
import sharp from "sharp"
import WebSocket from "ws"
import { AppConfig } from "../src/core/config.ts"
import { applyMigrations, migrationsDir, pgExecutor } from "../src/core/db/migrations.ts"
import { encoderOf } from "../src/core/image/image-processor.ts"
import { type FakeProvider } from "../test/fakes/ai/index.ts"
import { startFake } from "../test/fakes/ai/harness.ts"
import { openaiProtocol } from "../test/fakes/ai/openai.ts"
import { assertFontsRender, chatScreenshotPng, DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"

const quick = process.argv.includes("--quick")
const sessionsPerRound = Number(process.env["BENCH_SESSIONS"] ?? (quick ? "10" : "20"))
const rounds = Number(process.env["BENCH_ROUNDS"] ?? (quick ? "1" : "3"))
const warmupSessions = 2
const cpuProfDir = process.env["BENCH_CPU_PROF"]
/**
 * How the fake streams the suggestions: `paced` (default) one delta per ~4 characters (a token)
 * every PACED_DELTA_MS, as a model writing ~167 tokens/s; `words` one delta per word, all at once;
 * `pieces` ~3 pieces at once (the fake's default).
 */
const deltaMode = process.env["BENCH_DELTAS"] ?? "paced"
if (!["paced", "words", "pieces"].includes(deltaMode))
  throw new Error(`BENCH_DELTAS=${deltaMode}: paced, words or pieces`)
const PACED_DELTA_CHARS = 4
const PACED_DELTA_MS = 6
const adminUrl =
  process.env["BENCH_DATABASE_ADMIN_URL"] ??
  process.env["TEST_DATABASE_ADMIN_URL"] ??
  "postgresql://postgres@127.0.0.1:5432/postgres"
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const root = join(import.meta.dirname, "..")
const runId = randomBytes(4).toString("hex")
const databaseName = `wingmate_bench_${runId}`
const queuePrefix = `wm-bench-${runId}`
const sessionTimeoutMs = 60_000

const options = (await Effect.runPromise(Effect.provide(AppConfig, AppConfig.Default))).images

/** What the fake's vision answers read from every screenshot (the `VisionTranscript` schema). */
const TRANSCRIPT_JSON = JSON.stringify({
  messages: DEFAULT_CHAT.map((message) => ({
    sender: message.sender,
    text: message.text,
    time: null,
    confidence: 0.98
  })),
  matchName: "Alex",
  app: "iMessage",
  confidence: 0.97
})
/** What the fake's streams answer: three suggestion lines (split into ~3 deltas). */
const SUGGESTIONS = [
  "Saturday morning works for me, the lighthouse trail it is!",
  "Deal, I will bring the coffee if you bring the good mood",
  "Perfect, want to meet at the trailhead around nine?"
].join("\n")

const percentile = (samples: ReadonlyArray<number>, q: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const withClient = async <A>(connectionString: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

interface Running {
  readonly name: string
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** A child process on `script`; its output is kept (the last 64 KB) for errors and readiness. */
const start = (name: string, script: string, env: NodeJS.ProcessEnv, nodeArgs: ReadonlyArray<string> = []): Running => {
  const child = spawn(process.execPath, [...nodeArgs, script], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-65_536)
  }
  child.stdout?.on("data", keep)
  child.stderr?.on("data", keep)
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { name, child, output: () => output, exited }
}

/** SIGTERM (graceful: the worker writes its CPU profile then), SIGKILL after 15 s. */
const stop = async (running: Running) => {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return
  running.child.kill("SIGTERM")
  const timer = setTimeout(() => running.child.kill("SIGKILL"), 15_000)
  await running.exited
  clearTimeout(timer)
}

const waitFor = async (what: string, check: () => Promise<boolean>, running: Running, deadlineMs = 60_000) => {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) throw new Error(`${running.name} exited:\n${running.output()}`)
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`${what} not within ${deadlineMs} ms:\n${running.output()}`)
}

/** The environment without anything that would point the processes elsewhere. */
const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (
      !/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|AI_|GEMINI_|OPENAI_|ANTHROPIC_|CLERK_|NODE_ENV|PORT|HOST|PUBLIC_BASE_URL|DATA_DIR|LOG_|UPLOAD_)/.test(
        key
      )
    ) {
      env[key] = value
    }
  }
  return env
}

const devToken = async (dataDir: string, name: string): Promise<string> => {
  const { stdout } = await promisify(execFile)(process.execPath, ["scripts/dev-token.ts", name], {
    cwd: root,
    env: { ...baseEnv(), DATA_DIR: dataDir }
  })
  const token = stdout.trim().split("\n").at(-1)
  if (token === undefined || token === "") throw new Error(`no dev token for ${name}`)
  return token
}

interface Image {
  readonly name: string
  readonly bytes: Buffer
}

/** Distinct chat screenshots (a last line numbered), at four common phone sizes, as PNG; fails if two are the same. */
const makeImages = async (count: number): Promise<Array<Image>> => {
  const sizes: ReadonlyArray<readonly [number, number]> = [
    [1170, 2532],
    [1080, 2400],
    [1290, 2796],
    [750, 1334]
  ]
  const images: Array<Image> = []
  for (let i = 0; i < count; i++) {
    const [width, height] = sizes[i % sizes.length] ?? [1170, 2532]
    const bytes = await chatScreenshotPng({
      width,
      height,
      fontSize: Math.round((44 * width) / 1170),
      messages: [...DEFAULT_CHAT, { sender: "me", text: `Great, see you at the trailhead at ${i + 1}` }]
    })
    images.push({ name: `${width}x${height}-${i}.png`, bytes })
  }
  // Two equal images would share one OCR result (cached per user and content hash): one vision call fewer.
  const hashes = new Set(images.map((image) => createHash("sha256").update(image.bytes).digest("hex")))
  if (hashes.size !== images.length) throw new Error(`${images.length - hashes.size} bench images repeat`)
  return images
}

const api = async (url: string, token: string, path: string, init: RequestInit = {}) => {
  const response = await fetch(`${url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers }
  })
  return { status: response.status, body: (await response.json()) as { data?: Record<string, unknown> } }
}

/** Upload steps 1 and 2 (not timed): the upload id. */
const upload = async (url: string, token: string, bytes: Buffer): Promise<string> => {
  const ticket = await api(url, token, "/api/v1/uploads", {
    method: "POST",
    body: JSON.stringify({ contentType: "image/png", contentLength: bytes.length, purpose: "session" })
  })
  const data = ticket.body.data as
    { uploadId: string; url: string; method: string; headers: Record<string, string> } | undefined
  if (ticket.status !== 201 || data === undefined) throw new Error(`upload refused: ${ticket.status}`)
  const sent = await fetch(data.url, { method: data.method, headers: data.headers, body: bytes })
  await sent.arrayBuffer()
  if (sent.status !== 200) throw new Error(`upload PUT refused: ${sent.status}`)
  return data.uploadId
}

interface Sample {
  readonly id: string | undefined
  /** From the start of the create request, in ms. */
  readonly createMs: number
  readonly firstDeltaMs: number | undefined
  readonly endMs: number | undefined
  readonly end: string
  /** session.event frames received, and how many of them were deltas. */
  readonly events?: number
  readonly deltas?: number
  /** The terminal event's seq: every progress event published on the session's topic. */
  readonly published?: number | undefined
}

interface SessionFrame {
  readonly type: string
  readonly sessionId?: string
  readonly seq?: number
  readonly event?: string
  readonly code?: string
  readonly details?: { readonly sessionId?: string }
}

/** One authenticated `/ws` connection (a round's user: the app's one socket), frames routed by session. */
interface Follower {
  /** Calls `onFrame` with every `session.event` (and error) of `sessionId` from seq 0 on. */
  readonly follow: (sessionId: string, onFrame: (frame: SessionFrame) => void) => void
  readonly unfollow: (sessionId: string) => void
  readonly close: () => Promise<void>
}

const openFollower = (url: string, token: string): Promise<Follower> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws`)
    const routes = new Map<string, (frame: SessionFrame) => void>()
    const follower: Follower = {
      follow: (sessionId, onFrame) => {
        routes.set(sessionId, onFrame)
        ws.send(JSON.stringify({ type: "subscribe", sessionId, afterSeq: 0 }))
      },
      unfollow: (sessionId) => {
        routes.delete(sessionId)
      },
      close: () =>
        new Promise((closed) => {
          if (ws.readyState === WebSocket.CLOSED) return closed()
          ws.once("close", () => closed())
          ws.close()
        })
    }
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as SessionFrame
      if (frame.type === "auth.ok") return resolve(follower)
      if (frame.type === "error" && routes.size === 0) return reject(new Error(`ws: ${data.toString()}`))
      const sessionId = frame.sessionId ?? frame.details?.sessionId
      if (sessionId !== undefined) routes.get(sessionId)?.(frame)
    })
    ws.once("open", () => ws.send(JSON.stringify({ type: "auth", token })))
    ws.once("error", reject)
    ws.once("close", (code) => reject(new Error(`ws closed ${code}`)))
  })

/** Create → subscribe (from seq 0) → first delta → terminal event; times from the create's start. */
const runSession = async (url: string, token: string, follower: Follower, uploadId: string): Promise<Sample> => {
  const started = performance.now()
  const since = () => performance.now() - started
  const created = await api(url, token, "/api/v1/sessions", {
    method: "POST",
    body: JSON.stringify({ uploadIds: [uploadId] })
  })
  const createMs = since()
  const id = created.body.data?.["id"]
  if (created.status !== 202 || typeof id !== "string") {
    return { id: undefined, createMs, firstDeltaMs: undefined, endMs: undefined, end: `create ${created.status}` }
  }
  let firstDeltaMs: number | undefined
  let events = 0
  let deltas = 0
  let published: number | undefined
  const end = await new Promise<{ end: string; endMs: number | undefined }>((done) => {
    const timer = setTimeout(() => done({ end: "timeout", endMs: undefined }), sessionTimeoutMs)
    follower.follow(id, (frame) => {
      if (frame.type === "error") {
        clearTimeout(timer)
        return done({ end: `ws error ${frame.code}`, endMs: undefined })
      }
      if (frame.type !== "session.event") return
      events++
      if (frame.event === "delta") deltas++
      if (frame.event === "delta" && firstDeltaMs === undefined) firstDeltaMs = since()
      if (frame.event === "completed" || frame.event === "failed" || frame.event === "cancelled") {
        published = frame.seq
        clearTimeout(timer)
        done({ end: frame.event, endMs: since() })
      }
    })
  })
  follower.unfollow(id)
  return { id, createMs, firstDeltaMs, ...end, events, deltas, published }
}

/** Raw sharp on the same images: resize + encode (the encoder settings ImageProcessor uses), then the thumbnail from the result. */
const encode = encoderOf(options.format, options.quality)
const rawNormalize = async (input: Buffer) => {
  const image = await encode(
    sharp(input).resize({ width: options.maxEdge, height: options.maxEdge, fit: "inside", withoutEnlargement: true })
  ).toBuffer()
  await encode(
    sharp(image).resize({
      width: options.thumbnailEdge,
      height: options.thumbnailEdge,
      fit: "inside",
      withoutEnlargement: true
    })
  ).toBuffer()
}

/**
 * Every image submitted at once through `rawNormalize`, IMAGE_CONCURRENCY at a time: the elapsed
 * ms and each image's completion, from the batch's start.
 */
const rawPass = async (images: ReadonlyArray<Image>): Promise<{ elapsedMs: number; doneMs: Array<number> }> => {
  const queue = [...images]
  const doneMs: Array<number> = []
  const started = performance.now()
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        await rawNormalize(next.bytes)
        doneMs.push(performance.now() - started)
      }
    })
  )
  return { elapsedMs: performance.now() - started, doneMs }
}

/** CPU time (user + system, every thread) of a child process so far, in ms; undefined off Linux. */
const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()
const cpuMsOf = (pid: number | undefined): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
  } catch {
    return undefined
  }
}
const ownCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** CPU ms spent during a batch: the worker, the api, and this process (clients and the fake). */
interface CpuSpent {
  readonly worker: number | undefined
  readonly api: number | undefined
  readonly bench: number
  /** The PostgreSQL backends serving the bench database (a backend that ended meanwhile is missed). */
  readonly postgres: number | undefined
  /** The Redis server (shared: other clients' commands meanwhile are counted too). */
  readonly redis: number | undefined
}

interface Round {
  readonly round: number
  readonly batchMs: number
  readonly rawMs: number
  /** Each raw sharp image's completion, from its batch's start. */
  readonly rawDoneMs: ReadonlyArray<number>
  readonly cpu: CpuSpent
  readonly rawCpuMs: number
  readonly samples: ReadonlyArray<Sample>
}

const children: Array<Running> = []
let fake: FakeProvider | undefined
let redis: IORedis | undefined
let databaseCreated = false
const dataDir = mkdtempSync(join(tmpdir(), "wingmate-bench-"))
const sessionIds: Array<string> = []
const monitors: Array<pg.Client> = []
const cleanup = async () => {
  await Promise.allSettled(children.map(stop))
  await Promise.allSettled(monitors.map((client) => client.end()))
  await fake?.close().catch(() => undefined)
  if (redis !== undefined) {
    for (const pattern of [`${queuePrefix}:*`, "wingmate:progress:*"]) {
      let cursor = "0"
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000)
        const mine = pattern.startsWith(queuePrefix)
          ? keys
          : keys.filter((key) => sessionIds.some((id) => key.includes(id)))
        if (mine.length > 0) await redis.del(...mine)
        cursor = next
      } while (cursor !== "0")
    }
    await redis.quit()
  }
  if (databaseCreated) {
    await withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`))
  }
  rmSync(dataDir, { recursive: true, force: true })
}
process.once("SIGINT", () => {
  void cleanup().finally(() => process.exit(130))
})

const results: Array<Round> = []
/** Committed over the timed rounds (their uploads included: one INSERT each). */
let transactions = Number.NaN
let phases: Array<{ phase: string; meanMs: number; p50Ms: number; p99Ms: number }> = []
try {
  await assertFontsRender()
  const allImages = await makeImages(Math.max(sessionsPerRound, warmupSessions))
  const images = allImages.slice(0, sessionsPerRound)

  // A fresh, migrated database.
  await withClient(adminUrl, (admin) => admin.query(`CREATE DATABASE "${databaseName}"`))
  databaseCreated = true
  const dbUrl = new URL(adminUrl)
  dbUrl.pathname = `/${databaseName}`
  const databaseUrl = dbUrl.toString()
  await withClient(databaseUrl, (client) => applyMigrations(pgExecutor(client), migrationsDir))
  redis = new IORedis(redisUrl)
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1])

  // One dev user per round (and one for the warm-up): OCR results are cached per user and image.
  const users = ["bench-warmup", ...Array.from({ length: rounds }, (_, i) => `bench-round-${i + 1}`)]
  const tokens: Array<string> = []
  for (const user of users) tokens.push(await devToken(dataDir, user))

  fake = await startFake({
    ...openaiProtocol,
    // Non-streamed calls are the vision reads: they get the transcript instead of the suggestions.
    complete: (call, answer) => openaiProtocol.complete(call, { ...answer, text: TRANSCRIPT_JSON })
  })
  fake.setFallback(
    deltaMode === "paced"
      ? {
          kind: "ok",
          text: SUGGESTIONS,
          chunks: SUGGESTIONS.match(new RegExp(`[^]{1,${PACED_DELTA_CHARS}}`, "g")) ?? [],
          chunkDelayMs: PACED_DELTA_MS
        }
      : deltaMode === "words"
        ? { kind: "ok", text: SUGGESTIONS, chunks: SUGGESTIONS.split(/(?<= )|(?=\n)/) }
        : { kind: "ok", text: SUGGESTIONS }
  )

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const env: NodeJS.ProcessEnv = {
    ...baseEnv(),
    // api.ts and worker.ts are production unless told otherwise; as before, development mode.
    NODE_ENV: "development",
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: queuePrefix,
    DATA_DIR: dataDir,
    HOST: "127.0.0.1",
    PORT: String(port),
    PUBLIC_BASE_URL: url,
    LOG_FORMAT: "json",
    OPENAI_API_KEY: "bench-key",
    OPENAI_BASE_URL: fake.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_PROVIDER_STRATEGY_FALLBACKS: "gpt-4o",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    PROGRESS_TTL_SECONDS: "600",
    // One client address and a few users send every request: the bench measures the pipeline, not the limits.
    RATE_LIMIT_ENABLED: "false",
    // One address opens every connection here.
    HTTP_MAX_CONNECTIONS_PER_ADDRESS: "0",
    // One socket per round's user follows every session of the batch.
    WS_MAX_SUBSCRIPTIONS: String(Math.max(20, sessionsPerRound))
  }
  if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true })
  const profile = cpuProfDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfDir]
  const apiProcess = start("api", "src/main/api.ts", env, profile)
  children.push(apiProcess)
  const worker = start("worker", "src/main/worker.ts", env, profile)
  children.push(worker)
  if (cpuProfDir !== undefined) {
    console.log(`CPU profiles in ${cpuProfDir}: api pid ${apiProcess.child.pid}, worker pid ${worker.child.pid}`)
  }
  await waitFor("api ready", async () => (await fetch(`${url}/health/ready`)).status === 200, apiProcess)
  await waitFor("worker consuming", () => Promise.resolve(worker.output().includes("Consumer started")), worker)

  // PostgreSQL's share: the CPU of the backends connected to the bench database, and its commits.
  const monitor = new pg.Client({ connectionString: adminUrl })
  await monitor.connect()
  monitors.push(monitor)
  const postgresCpu = async () => {
    const backends = await monitor.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE datname = $1", [
      databaseName
    ])
    return new Map(backends.rows.map((row) => [row.pid, cpuMsOf(row.pid)]))
  }
  const postgresSpent = (at: Map<number, number | undefined>, after: Map<number, number | undefined>) => {
    let total = 0
    for (const [pid, ms] of after) {
      if (ms === undefined) return undefined
      total += ms - (at.get(pid) ?? 0)
    }
    return total
  }
  /** Transactions committed in the bench database (each autocommit statement is one). */
  const committed = async () => {
    // A backend flushes its statistics at most once a second while busy, and 10 s after it went idle.
    await sleep(11_000)
    await monitor.query("SELECT pg_stat_clear_snapshot()")
    const row = await monitor.query<{ commits: string }>(
      "SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = $1",
      [databaseName]
    )
    return Number(row.rows[0]?.commits ?? 0)
  }

  const batch = async (token: string, batchImages: ReadonlyArray<Image>) => {
    const uploadIds: Array<string> = []
    for (const image of batchImages) uploadIds.push(await upload(url, token, image.bytes))
    const follower = await openFollower(url, token)
    const before = {
      worker: cpuMsOf(worker.child.pid),
      api: cpuMsOf(apiProcess.child.pid),
      bench: ownCpuMs(),
      postgres: await postgresCpu(),
      redis: cpuMsOf(redisPid)
    }
    const started = performance.now()
    const samples = await Promise.all(uploadIds.map((uploadId) => runSession(url, token, follower, uploadId)))
    const batchMs = performance.now() - started
    const spent = (after: number | undefined, at: number | undefined) =>
      after === undefined || at === undefined ? undefined : after - at
    const cpu: CpuSpent = {
      worker: spent(cpuMsOf(worker.child.pid), before.worker),
      api: spent(cpuMsOf(apiProcess.child.pid), before.api),
      bench: ownCpuMs() - before.bench,
      postgres: postgresSpent(before.postgres, await postgresCpu()),
      redis: spent(cpuMsOf(redisPid), before.redis)
    }
    await follower.close()
    for (const sample of samples) if (sample.id !== undefined) sessionIds.push(sample.id)
    return { samples, batchMs, cpu }
  }

  // Warm-up (JIT, connections, Lua scripts) of both paths, not counted.
  await batch(tokens[0] ?? "", allImages.slice(0, warmupSessions))
  await rawPass(images)
  const warmupIds = sessionIds.length

  const transactionsAtStart = await committed()
  for (let round = 0; round < rounds; round++) {
    const { samples, batchMs, cpu } = await batch(tokens[round + 1] ?? "", images)
    const rawCpuStart = ownCpuMs()
    const raw = await rawPass(images)
    const rawCpuMs = ownCpuMs() - rawCpuStart
    results.push({ round: round + 1, batchMs, rawMs: raw.elapsedMs, rawDoneMs: raw.doneMs, cpu, rawCpuMs, samples })
  }
  transactions = (await committed()) - transactionsAtStart

  // Where the time went: the worker's own per-phase timings (`sessions.timings`; normalise includes
  // the wait for the IMAGE_CONCURRENCY semaphore), and the rest of created → completed (the queue,
  // phase transitions). `started_at` is not used: every phase entry rewrites it.
  const measured = sessionIds.slice(warmupIds)
  const rows = await withClient(databaseUrl, (client) =>
    client.query<{ timings: Record<string, number>; total_ms: number | null }>(
      `SELECT timings, EXTRACT(EPOCH FROM (completed_at - created_at)) * 1000 AS total_ms
         FROM sessions WHERE id = ANY($1) AND status = 'completed'`,
      [measured]
    )
  )
  const names = ["normalise", "ocr", "transcript", "suggestions"]
  const column = (pick: (row: (typeof rows.rows)[number]) => number | undefined) =>
    rows.rows.map(pick).filter((value): value is number => typeof value === "number" && Number.isFinite(value))
  const describe = (phase: string, values: ReadonlyArray<number>) => ({
    phase,
    meanMs: values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length),
    p50Ms: percentile(values, 0.5),
    p99Ms: percentile(values, 0.99)
  })
  const inPhases = (row: (typeof rows.rows)[number]) => names.reduce((sum, name) => sum + (row.timings[name] ?? 0), 0)
  phases = [
    ...names.map((phase) =>
      describe(
        phase,
        column((row) => row.timings[phase])
      )
    ),
    describe(
      "rest: queue wait, transitions",
      column((row) => Number(row.total_ms) - inPhases(row))
    ),
    describe(
      "created → completed (database clock)",
      column((row) => Number(row.total_ms))
    )
  ]
} finally {
  await cleanup()
}

const samples = results.flatMap((round) => round.samples)
const ok = samples.filter((sample) => sample.end === "completed")
const firstDelta = ok.flatMap((sample) => (sample.firstDeltaMs === undefined ? [] : [sample.firstDeltaMs]))
const completed = ok.flatMap((sample) => (sample.endMs === undefined ? [] : [sample.endMs]))
const create = samples.map((sample) => sample.createMs)
const totalBatchMs = results.reduce((sum, round) => sum + round.batchMs, 0)
const totalRawMs = results.reduce((sum, round) => sum + round.rawMs, 0)
const rawDone = results.flatMap((round) => round.rawDoneMs)
const overheadP50 = percentile(firstDelta, 0.5) - percentile(rawDone, 0.5)
const overheadP99 = percentile(firstDelta, 0.99) - percentile(rawDone, 0.99)
const pipelinePerSecond = ok.length / (totalBatchMs / 1000)
const rawPerSecond = (sessionsPerRound * rounds) / (totalRawMs / 1000)
const failures = samples.filter((sample) => sample.end !== "completed").map((sample) => sample.end)

const f = (value: number) => value.toFixed(1)
console.log(
  `\nSessions pipeline (${process.version}, sharp ${sharp.versions.sharp}, ${availableParallelism()} cores, ` +
    `load ${loadavg()
      .map((load) => load.toFixed(2))
      .join(
        " "
      )}; api + 1 worker on PostgreSQL and Redis, fake gpt-4o (vision at once, suggestion deltas ${deltaMode}); ` +
    `${sessionsPerRound} sessions at once × ${rounds} round${rounds === 1 ? "" : "s"}, 1 screenshot each)\n`
)
console.log("| measure (from the create request's start) | sessions | p50 ms | p99 ms | max ms |")
console.log("| --- | ---: | ---: | ---: | ---: |")
for (const [name, values] of [
  ["create answered (202)", create],
  ["first suggestion delta event", firstDelta],
  ["completed event", completed],
  [`raw sharp image done (same batch, concurrency ${options.concurrency})`, rawDone]
] as const) {
  console.log(
    `| ${name} | ${values.length} | ${f(percentile(values, 0.5))} | ${f(percentile(values, 0.99))} | ${f(Math.max(...values))} |`
  )
}
console.log(
  `\nOverhead (first delta − raw sharp image done): p50 ${f(overheadP50)} ms, p99 ${f(overheadP99)} ms` +
    ` (per round p50: ${results
      .map((round) => {
        const deltas = round.samples.flatMap((sample) =>
          sample.firstDeltaMs === undefined ? [] : [sample.firstDeltaMs]
        )
        return f(percentile(deltas, 0.5) - percentile(round.rawDoneMs, 0.5))
      })
      .join(", ")})`
)
console.log("\n| path | images | images/s | vs raw sharp |")
console.log("| --- | ---: | ---: | ---: |")
console.log(
  `| pipeline, batch start → last completed (sessions/s) | ${ok.length} | ${f(pipelinePerSecond)} | ${(pipelinePerSecond / rawPerSecond).toFixed(2)}× |`
)
console.log(
  `| raw sharp resize → ${options.format} + thumbnail (concurrency ${options.concurrency}) | ${sessionsPerRound * rounds} | ${f(rawPerSecond)} | 1.00× |`
)
console.log("\n| worker phase (sessions.timings) | mean ms | p50 ms | p99 ms |")
console.log("| --- | ---: | ---: | ---: |")
for (const phase of phases) {
  console.log(`| ${phase.phase} | ${f(phase.meanMs)} | ${f(phase.p50Ms)} | ${f(phase.p99Ms)} |`)
}
const cpuPerSession = (pick: (round: Round) => number | undefined) => {
  const values = results.map(pick)
  return values.some((value) => value === undefined)
    ? null
    : values.reduce<number>((sum, value) => sum + (value ?? 0), 0) / (sessionsPerRound * rounds)
}
const perImage = (pick: (round: Round) => number | undefined) => {
  const value = cpuPerSession(pick)
  return value === null ? "n/a" : f(value)
}
console.log("\n| CPU time (user + system, all threads) | ms per session or image |")
console.log("| --- | ---: |")
console.log(`| worker process (pipeline, sharp included) | ${perImage((round) => round.cpu.worker)} |`)
console.log(`| api process (create, uploads verify, WebSocket) | ${perImage((round) => round.cpu.api)} |`)
console.log(`| this process (HTTP clients, fake provider) | ${perImage((round) => round.cpu.bench)} |`)
console.log(`| PostgreSQL backends of the bench database | ${perImage((round) => round.cpu.postgres)} |`)
console.log(`| Redis server (shared: other clients included) | ${perImage((round) => round.cpu.redis)} |`)
console.log(`| raw sharp (same work per image) | ${perImage((round) => round.rawCpuMs)} |`)
const mean = (values: ReadonlyArray<number>) =>
  values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length)
const eventsPerSession = mean(ok.map((sample) => sample.events ?? 0))
const deltasPerSession = mean(ok.map((sample) => sample.deltas ?? 0))
const publishedPerSession = mean(ok.map((sample) => sample.published ?? 0))
console.log(
  `\nPostgreSQL transactions committed per session (api + worker, upload step included): ${f(transactions / (sessionsPerRound * rounds))}; ` +
    `session events per session: ${f(eventsPerSession)} received (${f(deltasPerSession)} deltas), ${f(publishedPerSession)} published (the terminal seq)`
)
if (failures.length > 0) console.log(`\nNot completed: ${failures.join(", ")}`)

mkdirSync(join(root, "bench/results"), { recursive: true })
writeFileSync(
  join(root, "bench/results/pipeline.json"),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      sharp: sharp.versions.sharp,
      cores: availableParallelism(),
      load: loadavg(),
      quick,
      deltas: deltaMode,
      sessionsPerRound,
      rounds,
      images: options,
      summary: {
        firstDeltaP50Ms: percentile(firstDelta, 0.5),
        firstDeltaP99Ms: percentile(firstDelta, 0.99),
        completedP50Ms: percentile(completed, 0.5),
        completedP99Ms: percentile(completed, 0.99),
        pipelineSessionsPerSecond: pipelinePerSecond,
        rawSharpImagesPerSecond: rawPerSecond,
        ratio: pipelinePerSecond / rawPerSecond,
        rawDoneP50Ms: percentile(rawDone, 0.5),
        rawDoneP99Ms: percentile(rawDone, 0.99),
        overheadP50Ms: overheadP50,
        overheadP99Ms: overheadP99,
        transactionsPerSession: transactions / (sessionsPerRound * rounds),
        eventsPerSession,
        deltasPerSession,
        publishedPerSession,
        cpuMsPerSession: {
          worker: cpuPerSession((round) => round.cpu.worker),
          api: cpuPerSession((round) => round.cpu.api),
          bench: cpuPerSession((round) => round.cpu.bench),
          postgres: cpuPerSession((round) => round.cpu.postgres),
          redis: cpuPerSession((round) => round.cpu.redis),
          rawSharpPerImage: cpuPerSession((round) => round.rawCpuMs)
        },
        failures
      },
      phases,
      perRound: results
    },
    null,
    2
  )
)
