/**
 * Latency with real provider profiles, as the app sees it: `src/main/api.ts` and one
 * `src/main/worker.ts` on a fresh, migrated PostgreSQL database (dropped at the end), BullMQ and
 * the progress bus on Redis (a unique QUEUE_PREFIX), local storage in a temporary DATA_DIR, dev
 * tokens, and the chain's one provider a wire fake in its own process (bench/latency-fake.ts)
 * paced by its default model's latency profile (test/fakes/ai; figures and sources in
 * bench/README.md, "Latency with real provider profiles").
 *
 * Per round: upload one distinct screenshot per session (not timed), open the round user's
 * WebSocket (the app keeps one open), then create every session at once; each is followed over the
 * socket from seq 0 and timed from the start of its create request to its first `lines` event (the
 * first transcript line on screen), its `transcript` event, its
 * first suggestion `delta`, its last `suggestion` (a complete, checked line) and `completed`. A new
 * dev user per round: no OCR result is reused. Prints a table; writes bench/results/latency.json.
 *
 *   npm run bench:latency               (20 sessions at once × 3 rounds)
 *   npm run bench:latency -- --quick    (20 sessions at once × 1 round)
 *   BENCH_SESSIONS, BENCH_ROUNDS override; BENCH_PROVIDER=gemini (default: the chain's default primary) | openai |
 *   anthropic; BENCH_QUEUE_CONCURRENCY sets the worker's QUEUE_CONCURRENCY (unset: the app's default);
 *   BENCH_TEXT_TTFT_MS replaces the profile's text time to first token (a what-if);
 *   BENCH_APP_ROOT runs another checkout's api and worker (a before/after: `git archive main | tar -x -C <dir>`,
 *   then link this checkout's node_modules and src/core/db/generated there); BENCH_DATABASE_ADMIN_URL, REDIS_URL
 *   (default redis://127.0.0.1:6379).
 */
import { execFileSync } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync } from "node:fs"
import { availableParallelism, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Redis as IORedis } from "ioredis"
import type { Paced } from "../test/fakes/ai/harness.ts"
import { type FakeProviderName, LATENCY_PROFILES } from "../test/fakes/ai/index.ts"
import {
  appEnv,
  baseEnv,
  cpuMsOf,
  devToken,
  distinctChatImages,
  endRun,
  type FollowedSession,
  followSession,
  freePort,
  freshDatabase,
  httpOk,
  openFollower,
  percentile,
  root,
  type Running,
  appNodeArgs,
  start,
  table,
  uploadScreenshot,
  waitFor,
  writeResult
} from "./support.ts"

const quick = process.argv.includes("--quick")
const sessionsPerRound = Number(process.env["BENCH_SESSIONS"] ?? "20")
const rounds = Number(process.env["BENCH_ROUNDS"] ?? (quick ? "1" : "3"))
const warmupSessions = 2
const providerName = process.env["BENCH_PROVIDER"] ?? "gemini"
const queueConcurrency = process.env["BENCH_QUEUE_CONCURRENCY"]
/** Another checkout's api and worker (e.g. `git archive main` with this one's node_modules): a before/after. */
const appRoot = process.env["BENCH_APP_ROOT"] ?? root
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const runId = randomBytes(4).toString("hex")
const queuePrefix = `wm-latency-${runId}`

const isProvider = (name: string): name is FakeProviderName => name in LATENCY_PROFILES
if (!isProvider(providerName)) throw new Error(`BENCH_PROVIDER: gemini, openai or anthropic, not ${providerName}`)
/**
 * BENCH_TEXT_TTFT_MS replaces the profile's time to first token of text calls (the suggestions): a
 * what-if, e.g. 0 for an upper bound of what writing the replies in the vision call would save.
 */
const textTtftMs = process.env["BENCH_TEXT_TTFT_MS"]
const profile =
  textTtftMs === undefined
    ? LATENCY_PROFILES[providerName]
    : { ...LATENCY_PROFILES[providerName], ttftMs: Number(textTtftMs) }

/** How the app reaches each fake: its chain id and the variables that point it there. */
const chainOf = (url: string): { readonly id: string; readonly env: NodeJS.ProcessEnv } => {
  switch (providerName) {
    case "gemini":
      return { id: "gemini-flash", env: { GEMINI_API_KEY: "bench-key", GEMINI_BASE_URL: url } }
    case "openai":
      return { id: "gpt-4o", env: { OPENAI_API_KEY: "bench-key", OPENAI_BASE_URL: url } }
    case "anthropic":
      return { id: "claude-sonnet", env: { ANTHROPIC_API_KEY: "bench-key", ANTHROPIC_BASE_URL: url } }
  }
}

const commit = (() => {
  if (appRoot !== root) return `app from ${appRoot}`
  try {
    const sha = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).toString().trim()
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { cwd: root }).toString().trim()
    return dirty === "" ? sha : `${sha}+uncommitted src`
  } catch {
    return "unknown"
  }
})()

const dataDir = mkdtempSync(join(tmpdir(), "wingmate-latency-"))
const children: Array<Running> = []
let dropDatabase: (() => Promise<unknown>) | undefined
let redis: IORedis | undefined
const sessionIds: Array<string> = []

const cleanup = () => endRun({ children, redis, queuePrefix, sessionIds, dropDatabase, dataDir })
process.once("SIGINT", () => {
  void cleanup().finally(() => process.exit(130))
})

interface Round {
  readonly sessions: ReadonlyArray<FollowedSession>
  readonly cpuMs: { readonly api?: number; readonly worker?: number; readonly fake?: number }
}

const results: Array<Round> = []
/** How the fake paced each answer of the measured rounds (the provider's share of the time). */
let paced: Array<Paced> = []
const loadAtStart = loadavg()
try {
  const database = await freshDatabase(`wingmate_latency_${runId}`)
  dropDatabase = database.drop
  redis = new IORedis(redisUrl)
  const images = await distinctChatImages(warmupSessions + sessionsPerRound * rounds)
  const users = ["latency-warmup", ...Array.from({ length: rounds }, (_, i) => `latency-round-${i + 1}`)]
  const tokens: Array<string> = []
  for (const user of users) tokens.push(await devToken(dataDir, user))

  // The provider in a process of its own: its timers and JSON are not the app's CPU.
  const fake = start(
    "fake",
    "bench/latency-fake.ts",
    { ...baseEnv(), BENCH_FAKE_PROVIDER: providerName, BENCH_TEXT_TTFT_MS: String(profile.ttftMs) },
    join(dataDir, "fake.log")
  )
  children.push(fake)
  await waitFor("fake listening", () => Promise.resolve(/listening (\S+)/.test(fake.output())), fake)
  const fakeUrl = /listening (\S+)/.exec(fake.output())?.[1] ?? ""
  const chain = chainOf(fakeUrl)

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const env: NodeJS.ProcessEnv = {
    ...appEnv({
      databaseUrl: database.databaseUrl,
      redisUrl,
      queuePrefix,
      dataDir,
      port,
      provider: chain.id,
      providerEnv: chain.env,
      sessionsAtOnce: sessionsPerRound
    }),
    ...(queueConcurrency === undefined ? {} : { QUEUE_CONCURRENCY: queueConcurrency })
  }
  // The image's Node flags (BENCH_NODE_ARGS replaces them, e.g. to add --cpu-prof).
  const api = start("api", join(appRoot, "src/main/api.ts"), env, join(dataDir, "api.log"), appNodeArgs("api"))
  children.push(api)
  const worker = start(
    "worker",
    join(appRoot, "src/main/worker.ts"),
    env,
    join(dataDir, "worker.log"),
    appNodeArgs("worker")
  )
  children.push(worker)
  await waitFor("api ready", httpOk(`${url}/health/ready`), api)
  await waitFor("worker consuming", () => Promise.resolve(worker.output().includes("Consumer started")), worker)

  let next = 0
  const batch = async (token: string, count: number): Promise<Round> => {
    const uploadIds: Array<string> = []
    for (const image of images.slice(next, next + count))
      uploadIds.push(await uploadScreenshot(url, token, image.bytes))
    next += count
    const follower = await openFollower(url, token)
    const cpu = () => ({ api: cpuMsOf(api.pid), worker: cpuMsOf(worker.pid), fake: cpuMsOf(fake.pid) })
    const before = cpu()
    // For a profile of the burst alone (the uploads above are not timed): cpuprofile-top.ts --since/--until.
    console.log(`burst of ${count} creates at monotonic ${process.hrtime.bigint() / 1000n} µs`)
    const sessions = await Promise.all(uploadIds.map((uploadId) => followSession(url, token, follower, uploadId)))
    const after = cpu()
    await follower.close()
    for (const session of sessions) if (session.id !== undefined) sessionIds.push(session.id)
    const spent = (key: "api" | "worker" | "fake") => {
      const [b, a] = [before[key], after[key]]
      return a === undefined || b === undefined ? {} : { [key]: a - b }
    }
    return { sessions, cpuMs: { ...spent("api"), ...spent("worker"), ...spent("fake") } }
  }

  const pacedSoFar = (): Array<Paced> =>
    readFileSync(join(dataDir, "fake.log"), "utf8")
      .split("\n")
      .flatMap((line) => (line.startsWith("paced ") ? [JSON.parse(line.slice("paced ".length)) as Paced] : []))

  // Warm-up (JIT, connections, Lua scripts), not counted.
  await batch(tokens[0] ?? "", warmupSessions)
  const pacedBefore = pacedSoFar().length
  // For a profiled run (NODE_OPTIONS=--cpu-prof): bench/cpuprofile-top.ts --since <this> leaves boot and warm-up out.
  console.log(`measured rounds start at monotonic ${process.hrtime.bigint() / 1000n} µs`)
  for (let round = 0; round < rounds; round++) results.push(await batch(tokens[round + 1] ?? "", sessionsPerRound))
  paced = pacedSoFar().slice(pacedBefore)
} finally {
  await cleanup()
}

const sessions = results.flatMap((round) => round.sessions)
const completed = sessions.filter((session) => session.end === "completed")
const failures = sessions.filter((session) => session.end !== "completed").map((session) => session.end)
const times = (pick: (session: FollowedSession) => number | undefined) =>
  completed.flatMap((session) => {
    const value = pick(session)
    return value === undefined ? [] : [value]
  })
const stats = (values: ReadonlyArray<number>) => ({
  p50: percentile(values, 0.5),
  p99: percentile(values, 0.99),
  max: values.length === 0 ? Number.NaN : Math.max(...values),
  n: values.length
})
const measures = {
  createMs: stats(sessions.map((session) => session.createMs)),
  firstLineMs: stats(times((session) => session.first["lines"])),
  transcriptMs: stats(times((session) => session.first["transcript"])),
  firstSuggestionTokenMs: stats(times((session) => session.first["delta"])),
  lastSuggestionMs: stats(times((session) => session.last["suggestion"])),
  completedMs: stats(times((session) => session.endMs))
}
/**
 * Where each session's time went, as the app saw it: the span between two consecutive marks
 * (create answered, each phase's status event, the transcript event, the first delta), p50 / p99.
 */
const MARKS = [
  ["create answered", (session: FollowedSession) => session.createMs],
  ["normalise began (queue wait)", (session: FollowedSession) => session.first["status:normalise"]],
  ["ocr began (normalise)", (session: FollowedSession) => session.first["status:ocr"]],
  ["first line (vision call to its first message)", (session: FollowedSession) => session.first["lines"]],
  ["transcript phase began (the rest of the answer)", (session: FollowedSession) => session.first["status:transcript"]],
  ["transcript event (saved, published)", (session: FollowedSession) => session.first["transcript"]],
  ["first delta (suggestions call)", (session: FollowedSession) => session.first["delta"]]
] as const
const spans = MARKS.slice(1).map(([name, pick], i) => {
  const previous = MARKS[i]?.[1]
  const values = times((session) => {
    const [from, to] = [previous?.(session), pick(session)]
    return from === undefined || to === undefined ? undefined : to - from
  })
  return { span: name, ...stats(values) }
})
const cpuPerSession = (key: "api" | "worker" | "fake") => {
  const values = results.map((round) => round.cpuMs[key])
  return values.some((value) => value === undefined)
    ? null
    : values.reduce<number>((sum, value) => sum + (value ?? 0), 0) / Math.max(1, completed.length)
}
const loadAtEnd = loadavg()
const f = (value: number) => (Number.isFinite(value) ? value.toFixed(0) : "–")
const goals: Record<string, string> = {
  firstLineMs: "p50 ≤ 1500",
  firstSuggestionTokenMs: "p50 ≤ 2500, p99 ≤ 4000"
}

console.log(
  `\nLatency with real provider profiles (${process.version}, ${availableParallelism()} cores, load ${loadAtStart
    .map((load) => load.toFixed(2))
    .join(" ")} → ${loadAtEnd.map((load) => load.toFixed(2)).join(" ")}; commit ${commit}; ${profile.model} profile: ` +
    `TTFT ${profile.ttftMs} ms text / ${profile.visionTtftMs} ms vision, ${profile.tokensPerSecond} tokens/s, ` +
    `${profile.tokensPerDelta} tokens per delta, ${profile.thinkingTokens} thinking tokens unless turned off; ` +
    `QUEUE_CONCURRENCY ${queueConcurrency ?? "default"}; ${sessionsPerRound} sessions at once × ${rounds} round${rounds === 1 ? "" : "s"})\n`
)
console.log(
  table(
    ["from the create request's start (WebSocket)", "sessions", "p50 ms", "p99 ms", "max ms", "goal"],
    (
      [
        ["create answered (202)", "createMs"],
        ["first transcript line on screen (lines)", "firstLineMs"],
        ["whole transcript (transcript event)", "transcriptMs"],
        ["first suggestion delta", "firstSuggestionTokenMs"],
        ["last suggestion (complete, checked)", "lastSuggestionMs"],
        ["completed event", "completedMs"]
      ] as const
    ).map(([name, key]) => {
      const row = measures[key]
      return [name, String(row.n), f(row.p50), f(row.p99), f(row.max), goals[key] ?? "–"]
    })
  )
)
const vision = paced.filter((answer) => answer.image)
const text = paced.filter((answer) => !answer.image)
const provider = {
  visionCalls: vision.length,
  visionOutputTokens: stats(vision.map((answer) => answer.outputTokens)),
  visionFirstTokenMs: stats(vision.map((answer) => answer.firstTokenMs)),
  visionDoneMs: stats(vision.map((answer) => answer.doneMs)),
  visionThinking: vision.filter((answer) => answer.thinking).length,
  suggestionCalls: text.length,
  suggestionsFirstTokenMs: stats(text.map((answer) => answer.firstTokenMs)),
  suggestionsDoneMs: stats(text.map((answer) => answer.doneMs)),
  suggestionsThinking: text.filter((answer) => answer.thinking).length
}
console.log(
  `\nThe provider's share (paced by the profile, the same on any machine): vision ${provider.visionCalls} calls, ` +
    `${f(provider.visionOutputTokens.p50)} output tokens, first token at ${f(provider.visionFirstTokenMs.p50)} ms ` +
    `and whole answer at ${f(provider.visionDoneMs.p50)} ms p50 ` +
    `(${provider.visionThinking} thinking); suggestions ${provider.suggestionCalls} streams, first token at ` +
    `${f(provider.suggestionsFirstTokenMs.p50)} ms p50 (${provider.suggestionsThinking} thinking). ` +
    `The rest (app, queue wait, this machine's load): first line p50 − vision's first token ${f(
      measures.firstLineMs.p50 - provider.visionFirstTokenMs.p50
    )} ms, transcript p50 − vision ${f(measures.transcriptMs.p50 - provider.visionDoneMs.p50)} ms, ` +
    `first delta p50 − vision − suggestions' first token ${f(
      measures.firstSuggestionTokenMs.p50 - provider.visionDoneMs.p50 - provider.suggestionsFirstTokenMs.p50
    )} ms`
)
console.log(
  `\nWhere the time went (ms between consecutive marks, as the app saw them):\n\n${table(
    ["up to", "p50 ms", "p99 ms"],
    spans.map((span) => [span.span, f(span.p50), f(span.p99)])
  )}`
)
const cpu = { api: cpuPerSession("api"), worker: cpuPerSession("worker"), fake: cpuPerSession("fake") }
console.log(
  `\nCPU ms per session: api ${cpu.api?.toFixed(1) ?? "n/a"}, worker ${cpu.worker?.toFixed(1) ?? "n/a"}, ` +
    `fake provider (own process) ${cpu.fake?.toFixed(1) ?? "n/a"}`
)
// Each event is a publish through Redis and the api, and a frame to the app: what the session costs in messages.
const eventsPerSession = Object.fromEntries(
  ["lines", "delta", "status"].map((kind) => [
    kind,
    percentile(
      completed.map((session) => session.counts[kind] ?? 0),
      0.5
    )
  ])
)
console.log(
  `Events per session (p50): ${Object.entries(eventsPerSession)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ")}`
)
if (failures.length > 0) console.log(`\nNot completed: ${failures.join(", ")}`)

writeResult("latency", {
  at: new Date().toISOString(),
  commit,
  node: process.version,
  eventsPerSession,
  cores: availableParallelism(),
  load: { start: loadAtStart, end: loadAtEnd },
  quick,
  sessionsPerRound,
  rounds,
  provider: providerName,
  profile,
  queueConcurrency: queueConcurrency ?? "default",
  ...measures,
  spans,
  providerShare: provider,
  cpuMsPerSession: cpu,
  failures
})
if (failures.length > 0) process.exitCode = 1
