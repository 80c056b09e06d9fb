/**
 * The Sessions pipeline's own overhead, end to end through the real processes: `src/main/api.ts`
 * and one `src/main/worker.ts` on a fresh, migrated PostgreSQL database (dropped at the end),
 * BullMQ and the progress bus on Redis (a unique QUEUE_PREFIX), local storage in a temporary
 * DATA_DIR shared by both, dev tokens from scripts/dev-token.ts, and an OpenAI wire fake as the
 * only provider (gpt-4o primary and fallback: no local OCR): its vision reads (the calls with an
 * image, streamed in one delta) are a transcript JSON at once, its text streams three suggestion lines paced like a real model
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
import { randomBytes } from "node:crypto"
import { mkdirSync, mkdtempSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { Redis as IORedis } from "ioredis"
import pg from "pg"
import sharp from "sharp"
import { AppConfig } from "../src/core/config.ts"
import { encoderOf } from "../src/core/image/image-processor.ts"
import { type FakeProvider } from "../test/fakes/ai/index.ts"
import { type Call, startFake } from "../test/fakes/ai/harness.ts"
import { openaiProtocol } from "../test/fakes/ai/openai.ts"
import { assertFontsRender, DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import {
  adminUrl,
  appEnv,
  type ChatImage,
  cpuMsOf,
  devToken,
  distinctChatImages,
  endRun,
  FAKE_SUGGESTIONS,
  fakeTranscript,
  type FollowedSession,
  followSession,
  freePort,
  freshDatabase,
  httpOk,
  openFollower,
  ownCpuMs,
  percentile,
  type Running,
  sleep,
  start,
  uploadScreenshot,
  waitFor,
  withClient,
  writeResult
} from "./support.ts"

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
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const runId = randomBytes(4).toString("hex")
const databaseName = `wingmate_bench_${runId}`
const queuePrefix = `wm-bench-${runId}`
const sessionTimeoutMs = 60_000

const options = (await Effect.runPromise(Effect.provide(AppConfig, AppConfig.Default))).images

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

/** A followed session (create → subscribe from seq 0 → terminal event) as pipeline.json's sample, keys unchanged. */
const sampleOf = (session: FollowedSession): Sample =>
  session.id === undefined
    ? { id: undefined, createMs: session.createMs, firstDeltaMs: undefined, endMs: undefined, end: session.end }
    : {
        id: session.id,
        createMs: session.createMs,
        firstDeltaMs: session.first["delta"],
        end: session.end,
        endMs: session.endMs,
        events: session.events,
        deltas: session.counts["delta"] ?? 0,
        published: session.endSeq
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
const rawPass = async (images: ReadonlyArray<ChatImage>): Promise<{ elapsedMs: number; doneMs: Array<number> }> => {
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
let dropDatabase: (() => Promise<unknown>) | undefined
const dataDir = mkdtempSync(join(tmpdir(), "wingmate-bench-"))
const sessionIds: Array<string> = []
const monitors: Array<pg.Client> = []
const cleanup = () =>
  endRun({ children, redis, queuePrefix, sessionIds, dropDatabase, dataDir }, async () => {
    await Promise.allSettled(monitors.map((client) => client.end()))
    await fake?.close().catch(() => undefined)
  })
process.once("SIGINT", () => {
  void cleanup().finally(() => process.exit(130))
})

const results: Array<Round> = []
/** Committed over the timed rounds (their uploads included: one INSERT each). */
let transactions = Number.NaN
let phases: Array<{ phase: string; meanMs: number; p50Ms: number; p99Ms: number }> = []
try {
  await assertFontsRender()
  const allImages = await distinctChatImages(Math.max(sessionsPerRound, warmupSessions))
  const images = allImages.slice(0, sessionsPerRound)

  // A fresh, migrated database.
  const database = await freshDatabase(databaseName)
  dropDatabase = database.drop
  const databaseUrl = database.databaseUrl
  redis = new IORedis(redisUrl)
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info("server"))?.[1])

  // One dev user per round (and one for the warm-up): OCR results are cached per user and image.
  const users = ["bench-warmup", ...Array.from({ length: rounds }, (_, i) => `bench-round-${i + 1}`)]
  const tokens: Array<string> = []
  for (const user of users) tokens.push(await devToken(dataDir, user))

  // The vision reads (the calls with an image, streamed or not) get the transcript at once, in one
  // delta when streamed; the other streams get the suggestions, paced as below.
  const transcriptOf = (call: Call) => fakeTranscript(call.body, DEFAULT_CHAT)
  fake = await startFake({
    ...openaiProtocol,
    complete: (call, answer) => openaiProtocol.complete(call, { ...answer, text: transcriptOf(call) }),
    stream: (call, answer, finished) =>
      openaiProtocol.hasImage(call.body)
        ? openaiProtocol.stream(call, { ...answer, text: transcriptOf(call), chunks: [transcriptOf(call)] }, finished)
        : openaiProtocol.stream(call, answer, finished)
  })
  fake.setFallback(
    deltaMode === "paced"
      ? {
          kind: "ok",
          text: FAKE_SUGGESTIONS,
          chunks: FAKE_SUGGESTIONS.match(new RegExp(`[^]{1,${PACED_DELTA_CHARS}}`, "g")) ?? [],
          chunkDelayMs: PACED_DELTA_MS
        }
      : deltaMode === "words"
        ? { kind: "ok", text: FAKE_SUGGESTIONS, chunks: FAKE_SUGGESTIONS.split(/(?<= )|(?=\n)/) }
        : { kind: "ok", text: FAKE_SUGGESTIONS }
  )

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const env = appEnv({
    databaseUrl,
    redisUrl,
    queuePrefix,
    dataDir,
    port,
    provider: "gpt-4o",
    providerEnv: { OPENAI_API_KEY: "bench-key", OPENAI_BASE_URL: fake.url },
    sessionsAtOnce: sessionsPerRound
  })
  if (cpuProfDir !== undefined) mkdirSync(cpuProfDir, { recursive: true })
  const profile = cpuProfDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfDir]
  const apiProcess = start("api", "src/main/api.ts", env, join(dataDir, "api.log"), profile)
  children.push(apiProcess)
  const worker = start("worker", "src/main/worker.ts", env, join(dataDir, "worker.log"), profile)
  children.push(worker)
  if (cpuProfDir !== undefined) {
    console.log(`CPU profiles in ${cpuProfDir}: api pid ${apiProcess.pid}, worker pid ${worker.pid}`)
  }
  await waitFor("api ready", httpOk(`${url}/health/ready`), apiProcess)
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

  const batch = async (token: string, batchImages: ReadonlyArray<ChatImage>) => {
    const uploadIds: Array<string> = []
    for (const image of batchImages) uploadIds.push(await uploadScreenshot(url, token, image.bytes))
    const follower = await openFollower(url, token)
    const before = {
      worker: cpuMsOf(worker.pid),
      api: cpuMsOf(apiProcess.pid),
      bench: ownCpuMs(),
      postgres: await postgresCpu(),
      redis: cpuMsOf(redisPid)
    }
    const started = performance.now()
    const samples = await Promise.all(
      uploadIds.map(async (uploadId) => sampleOf(await followSession(url, token, follower, uploadId, sessionTimeoutMs)))
    )
    const batchMs = performance.now() - started
    const spent = (after: number | undefined, at: number | undefined) =>
      after === undefined || at === undefined ? undefined : after - at
    const cpu: CpuSpent = {
      worker: spent(cpuMsOf(worker.pid), before.worker),
      api: spent(cpuMsOf(apiProcess.pid), before.api),
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

writeResult("pipeline", {
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
})
