/**
 * `kill -9` of a worker process in the middle of a job (the suggestion step waiting on the
 * provider): another worker process takes the stalled job over (short QUEUE_LOCK_DURATION_MS and
 * QUEUE_STALLED_INTERVAL_MS), resumes from the saved transcript and completes the session once:
 * no duplicate transcript or suggestion rows, one vision read, and the client's event stream
 * (opened before the kill, on the api) ends with `completed`.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb, testDatabaseUrl } from "../../support/database.ts"
import { outputContains } from "../../support/processes.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { eventually } from "../openers/support.ts"
import {
  createSession,
  expectSavedOnce,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  readEvents,
  type WireSession,
  uploadPng
} from "./support.ts"

const root = join(import.meta.dirname, "..", "..", "..")
const dataDir = mkdtempSync(join(tmpdir(), "wingmate-kill-"))
const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `wm-test-${randomBytes(4).toString("hex")}`
const openai = await startFakeOpenAI()

interface Worker {
  readonly child: ChildProcess
  readonly output: () => string
}

const workers: Array<Worker> = []

/** `src/main/worker.ts` as a child process, resolved once its consumer has started. */
const startWorker = async (): Promise<Worker> => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|AI_|GEMINI_|OPENAI_|ANTHROPIC_|NODE_ENV)/.test(key)) {
      env[key] = value
    }
  }
  const child = spawn(process.execPath, ["src/main/worker.ts"], {
    cwd: root,
    env: {
      ...env,
      // worker.ts is production unless told otherwise.
      NODE_ENV: "test",
      DATABASE_URL: testDatabaseUrl(),
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: prefix,
      QUEUE_LOCK_DURATION_MS: "1000",
      QUEUE_STALLED_INTERVAL_MS: "500",
      QUEUE_ATTEMPTS: "3",
      QUEUE_BACKOFF_MS: "0",
      DATA_DIR: dataDir,
      ...openAiFakeConfig(openai.url),
      AI_TIMEOUT_MS: "60000",
      LOG_FORMAT: "json"
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const worker = { child, output: () => output }
  workers.push(worker)
  await outputContains(child, () => output, "Consumer started")
  return worker
}

afterAll(async () => {
  for (const { child } of workers) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGTERM")
      await exited
    }
  }
  await openai.close()
  rmSync(dataDir, { recursive: true, force: true })
})

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    config: { REDIS_URL: redisUrl, QUEUE_PREFIX: prefix },
    storage: localTestStorage({ root: join(dataDir, "storage") })
  }),
  { timeout: 120_000 }
)("sessions: a worker process killed mid-job", (it) => {
  it.effect(
    "kill -9 during the suggestion step → another worker process completes the session once",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const first = yield* Effect.promise(startWorker)
        // The vision read answers; the suggestion stream hangs until the worker dies; then answers.
        openai.enqueue(FAKE_VISION, { kind: "hang" })
        openai.setFallback(FAKE_SUGGESTIONS)

        const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        expect(created.status).toBe(202)
        const id = (created.body as { data: WireSession }).data.id
        const listening = yield* Effect.fork(readEvents(url, alice.headers, id, "0", 90_000))

        const streamed = () => openai.requests.filter((request) => !request.image).length
        yield* eventually(Effect.sync(streamed), (count) => count === 1, "the suggestion stream to start")
        // The stream starts while the transcript is being saved: the suggestion step is once it is.
        const [midway] = yield* eventually(
          sql<{ status: string; phase: string }>("SELECT status, phase FROM sessions WHERE id = $1", [id]),
          (rows) => rows[0]?.phase === "suggestions",
          "the suggestion step"
        )
        expect(midway).toEqual({ status: "processing", phase: "suggestions" })
        expect(streamed()).toBe(1)

        const exited = new Promise((resolve) => first.child.once("exit", (_code, signal) => resolve(signal)))
        first.child.kill("SIGKILL")
        expect(yield* Effect.promise(() => exited)).toBe("SIGKILL")
        yield* Effect.promise(startWorker)

        const events = yield* Fiber.join(listening)
        const kinds = events.frames.map((frame) => frame.event)
        expect(kinds.at(-1)).toBe("completed")
        expect(kinds.filter((kind) => kind === "completed")).toHaveLength(1)
        expect(kinds).not.toContain("failed")

        yield* expectSavedOnce(url, alice.headers, id)
        // The second worker resumed from the saved transcript: one vision read in all.
        expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
      }),
    // Two worker processes boot inside the test (a loaded machine took over 30 s for both): the
    // guard is generous, the waits themselves are on events.
    120_000
  )
})
