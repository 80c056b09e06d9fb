/**
 * What the process benches share: a fresh migrated PostgreSQL database, child processes whose
 * output goes to a file (not through a pipe to the bench, which would charge the bench process
 * for every log line), their CPU time and memory from /proc, and a readiness wait.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process"
import { createHash } from "node:crypto"
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import pg from "pg"
import type { Redis as IORedis } from "ioredis"
import WebSocket from "ws"
import { applyMigrations, migrationsDir, pgExecutor } from "../src/core/db/migrations.ts"
import { arrayField, field } from "../test/fakes/ai/harness.ts"

export const root = join(import.meta.dirname, "..")

export const adminUrl =
  process.env["BENCH_DATABASE_ADMIN_URL"] ??
  process.env["TEST_DATABASE_ADMIN_URL"] ??
  "postgresql://postgres@127.0.0.1:5432/postgres"

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const percentile = (samples: ReadonlyArray<number>, q: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

export const median = (samples: ReadonlyArray<number>) => percentile(samples, 0.5)

export const withClient = async <A>(connectionString: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/** A fresh database named `name`, migrated with the project's migrations: its URL and a drop. */
export const freshDatabase = async (name: string) => {
  await withClient(adminUrl, (admin) => admin.query(`CREATE DATABASE "${name}"`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const databaseUrl = url.toString()
  const drop = () => withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
  try {
    await withClient(databaseUrl, (client) => applyMigrations(pgExecutor(client), migrationsDir))
  } catch (error) {
    await drop()
    throw error
  }
  return { databaseUrl, drop }
}

/** The environment without anything that would point a process at other services or providers. */
export const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (
      !/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|OCR_|AI_|GEMINI_|OPENAI_|ANTHROPIC_|CLERK_|NODE_ENV|PORT|HOST|PUBLIC_BASE_URL|DATA_DIR|LOG_|UPLOAD_|CORS_)/.test(
        key
      )
    ) {
      env[key] = value
    }
  }
  return env
}

/** Where a bench points the api and the worker it starts. */
export interface AppTarget {
  readonly databaseUrl: string
  readonly redisUrl: string
  readonly queuePrefix: string
  readonly dataDir: string
  readonly port: number
  /** The chain's one provider, primary and fallback (e.g. `gpt-4o`), and the variables that point the app at its fake. */
  readonly provider: string
  readonly providerEnv: NodeJS.ProcessEnv
  /** Sessions one socket follows at once. */
  readonly sessionsAtOnce: number
}

/** The api's and the worker's environment: development mode, the run's own database, queue prefix and DATA_DIR. */
export const appEnv = (target: AppTarget): NodeJS.ProcessEnv => ({
  ...baseEnv(),
  // api.ts and worker.ts are production unless told otherwise.
  NODE_ENV: "development",
  DATABASE_URL: target.databaseUrl,
  REDIS_URL: target.redisUrl,
  QUEUE_PREFIX: target.queuePrefix,
  DATA_DIR: target.dataDir,
  HOST: "127.0.0.1",
  PORT: String(target.port),
  PUBLIC_BASE_URL: `http://127.0.0.1:${target.port}`,
  LOG_FORMAT: "json",
  ...target.providerEnv,
  AI_PROVIDER_STRATEGY_PRIMARY: target.provider,
  AI_PROVIDER_STRATEGY_FALLBACKS: target.provider,
  // The spend cap on, as deployed by default (each AI call's admission, renewal and release are
  // part of a session's cost), but high enough never to refuse a bench's user.
  AI_DAILY_SPEND_CAP_MICROS: "1000000000000",
  PROGRESS_TTL_SECONDS: "600",
  // One client address and a few users send every request: a bench measures the app, not its limits.
  RATE_LIMIT_ENABLED: "false",
  // One address opens every connection here.
  HTTP_MAX_CONNECTIONS_PER_ADDRESS: "0",
  // One socket per round's user follows every session of the batch.
  WS_MAX_SUBSCRIPTIONS: String(Math.max(20, target.sessionsAtOnce))
})

/**
 * The Node flags a process runs with in the image, so that a bench measures it as deployed: the
 * Dockerfile's NODE_OPTIONS, and for the api the flags of the image's command (its `CMD`:
 * `--liftoff-only`, which Node refuses in NODE_OPTIONS). BENCH_NODE_ARGS replaces them ("" for
 * V8's defaults).
 */
export const appNodeArgs = (role: "api" | "worker"): ReadonlyArray<string> => {
  const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
  const options = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1] ?? ""
  // The exec form's JSON array: ["node", ...flags, "src/main/api.ts"].
  const command: unknown = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? "[]")
  const commandFlags = role === "api" && Array.isArray(command) ? command.slice(1, -1).map(String) : []
  const flags = process.env["BENCH_NODE_ARGS"]?.split(" ") ?? [...options.split(" "), ...commandFlags]
  return flags.filter((arg) => arg !== "")
}

export interface Running {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** The last 8 KB of its output. */
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** `node [nodeArgs] script` from the repository root, stdout and stderr appended to `logFile`. */
export const start = (
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
  nodeArgs: ReadonlyArray<string> = []
): Running => {
  const fd = openSync(logFile, "a")
  const child = spawn(process.execPath, [...nodeArgs, script], { cwd: root, env, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  if (child.pid === undefined) throw new Error(`${name} did not start`)
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const output = () => {
    try {
      return readFileSync(logFile, "utf8").slice(-8192)
    } catch {
      return ""
    }
  }
  return { name, child, pid: child.pid, output, exited }
}

/** SIGTERM (graceful: a --cpu-prof profile is written then), SIGKILL after 15 s. */
export const stop = async (running: Running) => {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return
  running.child.kill("SIGTERM")
  const timer = setTimeout(() => running.child.kill("SIGKILL"), 15_000)
  await running.exited
  clearTimeout(timer)
}

/** Polls `check` until true; fails early when the process exits. */
export const waitFor = async (what: string, check: () => Promise<boolean>, running: Running, deadlineMs = 60_000) => {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) throw new Error(`${running.name} exited:\n${running.output()}`)
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`${what} not within ${deadlineMs} ms:\n${running.output()}`)
}

export const httpOk = (url: string) => async () => (await fetch(url)).status === 200

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system, every thread) of a process so far, in ms; undefined off Linux. */
export const cpuMsOf = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
  } catch {
    return undefined
  }
}

/** This process's CPU time so far (user + system), in ms. */
export const ownCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** `VmRSS` and `VmHWM` (peak) of a process from /proc, in MiB; undefined off Linux. */
export const memoryOf = (pid: number): { rssMiB: number; peakMiB: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1])
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/** Writes `result` to bench/results/<name>.json (indented). */
export const writeResult = (name: string, result: unknown) => {
  mkdirSync(join(root, "bench/results"), { recursive: true })
  writeFileSync(join(root, `bench/results/${name}.json`), JSON.stringify(result, null, 2))
}

/** A Markdown table with right-aligned numeric columns. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? "").length)))
  const numeric = header.map(
    (_, i) => rows.length > 0 && rows.every((row) => /^[-+]?[\d.,]+[×%]?$|^–$/.test(row[i] ?? ""))
  )
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => (numeric[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(" | ")} |`
  return [
    line(header),
    `| ${widths.map((width, i) => (numeric[i] ? `${"-".repeat(Math.max(1, width - 1))}:` : "-".repeat(width))).join(" | ")} |`,
    ...rows.map(line)
  ].join("\n")
}

// ---------------------------------------------------------------------------------------------------------------
// Driving the app as a phone does: dev tokens, uploads, one WebSocket, sessions followed from their creation

/** A TCP port free right now on 127.0.0.1 (the end-to-end tests' own). */
export { freePort } from "../test/support/processes.ts"

/** A bearer token for dev user `name`, signed with the dev key pair under `dataDir` (scripts/dev-token.ts). */
export const devToken = async (dataDir: string, name: string): Promise<string> => {
  const { stdout } = await promisify(execFile)(process.execPath, ["scripts/dev-token.ts", name], {
    cwd: root,
    env: { ...baseEnv(), DATA_DIR: dataDir }
  })
  const token = stdout.trim().split("\n").at(-1)
  if (token === undefined || token === "") throw new Error(`no dev token for ${name}`)
  return token
}

export interface ChatImage {
  readonly name: string
  readonly bytes: Buffer
}

/**
 * `count` chat screenshots, each distinct (its last line carries its index), at four common phone sizes, as PNG;
 * fails if two are the same: equal images would share one OCR result (cached per user and content hash).
 */
export const distinctChatImages = async (count: number): Promise<Array<ChatImage>> => {
  const sizes: ReadonlyArray<readonly [number, number]> = [
    [1170, 2532],
    [1080, 2400],
    [1290, 2796],
    [750, 1334]
  ]
  // Loaded here: the other benches that share this file draw no screenshot.
  const { chatScreenshotPng, DEFAULT_CHAT } = await import("../test/fixtures/chat-screenshot.ts")
  const images: Array<ChatImage> = []
  for (let i = 0; i < count; i++) {
    const [width, height] = sizes[i % sizes.length] ?? [1170, 2532]
    const bytes = await chatScreenshotPng({
      width,
      height,
      fontSize: Math.round((44 * width) / 1170),
      messages: [...DEFAULT_CHAT, { sender: "me", text: `Great, see you at the trailhead, table ${i + 1}` }]
    })
    images.push({ name: `${width}x${height}-${i}.png`, bytes })
  }
  const hashes = new Set(images.map((image) => createHash("sha256").update(image.bytes).digest("hex")))
  if (hashes.size !== images.length) throw new Error(`${images.length - hashes.size} bench images repeat`)
  return images
}

interface ApiAnswer {
  readonly status: number
  readonly data: Readonly<Record<string, unknown>> | undefined
}

const apiCall = async (url: string, token: string, path: string, body: unknown): Promise<ApiAnswer> => {
  const response = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body)
  })
  const json: unknown = await response.json()
  const data = typeof json === "object" && json !== null && "data" in json ? json.data : undefined
  return {
    status: response.status,
    data: typeof data === "object" && data !== null ? Object.fromEntries(Object.entries(data)) : undefined
  }
}

/** Upload steps 1 and 2 (ticket, then PUT): the upload id. */
export const uploadScreenshot = async (url: string, token: string, bytes: Buffer): Promise<string> => {
  const ticket = await apiCall(url, token, "/api/v1/uploads", {
    contentType: "image/png",
    contentLength: bytes.length,
    purpose: "session"
  })
  const { uploadId, url: putUrl, method, headers } = ticket.data ?? {}
  if (ticket.status !== 201 || typeof uploadId !== "string" || typeof putUrl !== "string") {
    throw new Error(`upload refused: ${ticket.status}`)
  }
  const sent = await fetch(putUrl, {
    method: typeof method === "string" ? method : "PUT",
    headers: typeof headers === "object" && headers !== null ? Object.fromEntries(Object.entries(headers)) : {},
    body: bytes
  })
  await sent.arrayBuffer()
  if (sent.status !== 200) throw new Error(`upload PUT refused: ${sent.status}`)
  return uploadId
}

export interface SessionFrame {
  readonly type: string
  readonly sessionId?: string
  readonly seq?: number
  readonly event?: string
  readonly data?: { readonly phase?: string | null }
  readonly code?: string
  readonly details?: { readonly sessionId?: string }
}

/** One authenticated `/ws` connection (the app's one socket), frames routed by session. */
export interface Follower {
  /** Calls `onFrame` with every `session.event` (and error) of `sessionId` from seq 0 on. */
  readonly follow: (sessionId: string, onFrame: (frame: SessionFrame) => void) => void
  readonly unfollow: (sessionId: string) => void
  readonly close: () => Promise<void>
}

export const openFollower = (url: string, token: string): Promise<Follower> =>
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

export interface FollowedSession {
  readonly id: string | undefined
  /** Every time below is in ms from the start of the create request. */
  readonly createMs: number
  /**
   * The first and the last time each `session.event` kind arrived (delta, transcript, suggestion, completed…);
   * `first["status:<phase>"]`: when the status event of that phase arrived.
   */
  readonly first: Readonly<Record<string, number>>
  readonly last: Readonly<Record<string, number>>
  /** completed, failed, cancelled, timeout, `create <status>` or `ws error <code>`. */
  readonly end: string
  readonly endMs: number | undefined
  readonly events: number
  /** How many of each `session.event` kind arrived. */
  readonly counts: Readonly<Record<string, number>>
  /** The terminal event's seq: every progress event published on the session's topic. */
  readonly endSeq: number | undefined
}

/** Create a one-screenshot session, follow it over `follower` from seq 0 to its terminal event. */
export const followSession = async (
  url: string,
  token: string,
  follower: Follower,
  uploadId: string,
  timeoutMs = 60_000
): Promise<FollowedSession> => {
  const started = performance.now()
  const since = () => performance.now() - started
  const created = await apiCall(url, token, "/api/v1/sessions", { uploadIds: [uploadId] })
  const createMs = since()
  const id = created.data?.["id"]
  const first: Record<string, number> = {}
  const last: Record<string, number> = {}
  const counts: Record<string, number> = {}
  if (created.status !== 202 || typeof id !== "string") {
    const end = `create ${created.status}`
    return { id: undefined, createMs, first, last, end, endMs: undefined, events: 0, counts, endSeq: undefined }
  }
  let events = 0
  let endSeq: number | undefined
  const end = await new Promise<{ end: string; endMs: number | undefined }>((done) => {
    const timer = setTimeout(() => done({ end: "timeout", endMs: undefined }), timeoutMs)
    follower.follow(id, (frame) => {
      if (frame.type === "error") {
        clearTimeout(timer)
        return done({ end: `ws error ${frame.code}`, endMs: undefined })
      }
      if (frame.type !== "session.event" || frame.event === undefined) return
      const at = since()
      events++
      counts[frame.event] = (counts[frame.event] ?? 0) + 1
      first[frame.event] ??= at
      last[frame.event] = at
      // A status event also marks when its phase began, as the app sees it.
      const phase = frame.event === "status" ? frame.data?.phase : undefined
      if (typeof phase === "string") first[`status:${phase}`] ??= at
      if (frame.event === "completed" || frame.event === "failed" || frame.event === "cancelled") {
        endSeq = frame.seq
        clearTimeout(timer)
        done({ end: frame.event, endMs: at })
      }
    })
  })
  follower.unfollow(id)
  return { id, createMs, first, last, events, counts, endSeq, ...end }
}

/** Deletes a run's Redis keys: every key under its QUEUE_PREFIX, and the progress keys of its sessions. */
const deleteRunKeys = async (redis: IORedis, queuePrefix: string, sessionIds: ReadonlyArray<string>) => {
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
}

/** What a bench that runs the api and a worker holds until its end (the values at the time of the call). */
export interface BenchRun {
  readonly children: ReadonlyArray<Running>
  readonly redis: IORedis | undefined
  readonly queuePrefix: string
  readonly sessionIds: ReadonlyArray<string>
  readonly dropDatabase: (() => Promise<unknown>) | undefined
  readonly dataDir: string
}

/**
 * Stops the children, then runs `afterChildren` (the bench's own clients), then deletes the run's Redis
 * keys, drops its database and removes its DATA_DIR.
 */
export const endRun = async (run: BenchRun, afterChildren?: () => Promise<unknown>) => {
  await Promise.allSettled(run.children.map(stop))
  await afterChildren?.()
  if (run.redis !== undefined) {
    await deleteRunKeys(run.redis, run.queuePrefix, run.sessionIds)
    await run.redis.quit()
  }
  await run.dropDatabase?.()
  rmSync(run.dataDir, { recursive: true, force: true })
}

// ---------------------------------------------------------------------------------------------------------------
// What the benches' provider fakes answer

/** The suggestions a fake's streams answer: three lines. */
export const FAKE_SUGGESTIONS = [
  "Saturday morning works for me, the lighthouse trail it is!",
  "Deal, I will bring the coffee if you bring the good mood",
  "Perfect, want to meet at the trailhead around nine?"
].join("\n")

/** The JSON schema a request asks for (Gemini `responseJsonSchema`, OpenAI `response_format`, Anthropic's). */
const schemaOf = (body: unknown): unknown =>
  field(field(body, "generationConfig"), "responseJsonSchema") ??
  field(field(field(body, "response_format"), "json_schema"), "schema") ??
  field(field(body, "output_config"), "schema") ??
  field(arrayField(body, "tools")[0], "input_schema")

/**
 * A vision read of `chat` in the shape the request's JSON schema asks for: `ocr-v1`'s (a confidence per
 * message and overall, null times) when the schema requires a message's `time`, `ocr-v3`'s lines
 * (`sender: text`) when its messages are strings, else `ocr-v2`'s objects with `sender` and `text` only
 * (so a before/after through `BENCH_APP_ROOT` gets each checkout's own form).
 */
export const fakeTranscript = (
  body: unknown,
  chat: ReadonlyArray<{ readonly sender: string; readonly text: string }>
): string => {
  const schema = schemaOf(body)
  const rest = { matchName: "Alex", app: "iMessage", confidence: 0.97 }
  if (/"required":\[[^\]]*"time"/.test(JSON.stringify(schema ?? {}))) {
    return JSON.stringify({
      messages: chat.map((message) => ({ sender: message.sender, text: message.text, time: null, confidence: 0.98 })),
      ...rest
    })
  }
  const lines = field(field(field(schema, "properties"), "messages"), "items")
  return field(lines, "type") === "string"
    ? JSON.stringify({ messages: chat.map((message) => `${message.sender}: ${message.text}`), ...rest })
    : JSON.stringify({ messages: chat.map((message) => ({ sender: message.sender, text: message.text })), ...rest })
}
