/**
 * Two processes, as in production: this test's api server (PostgreSQL, Redis, no consumer) and
 * `src/main/worker.ts` as a child process on the same database, Redis and storage folder. The
 * job crosses BullMQ, the progress crosses Redis pub/sub to the api's SSE stream.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb, testDatabaseUrl } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { freePort, outputContains } from "../../support/processes.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, readEvents, uploadPng, type WireSession } from "./support.ts"
import { notTheApiServer } from "../../support/conformance.setup.ts"

const root = join(import.meta.dirname, "..", "..", "..")
const dataDir = mkdtempSync(join(tmpdir(), "wingmate-worker-"))
const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `wm-test-${randomBytes(4).toString("hex")}`

let screenshot: Buffer
let worker: ChildProcess
let output = ""
let healthPort = 0

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|AI_|GEMINI_|OPENAI_|ANTHROPIC_|NODE_ENV)/.test(key)) {
      env[key] = value
    }
  }
  healthPort = await freePort()
  worker = spawn(process.execPath, ["src/main/worker.ts"], {
    cwd: root,
    env: {
      ...env,
      // worker.ts is production unless told otherwise.
      NODE_ENV: "test",
      DATABASE_URL: testDatabaseUrl(),
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: prefix,
      DATA_DIR: dataDir,
      LOG_FORMAT: "json",
      WORKER_HEALTH_PORT: String(healthPort)
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  worker.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  worker.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  await outputContains(worker, () => output, "Consumer started")
  // A process starting beside the other suites on this machine's cores: more than the default.
}, 120_000)

afterAll(async () => {
  const exited = new Promise((resolve) => worker.once("exit", resolve))
  worker.kill("SIGTERM")
  await exited
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
)("sessions: api and worker as two processes (BullMQ, Redis progress)", (it) => {
  it.effect("the worker process completes the session; the api streams its events in order", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, screenshot)
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(202)
      const id = (created.body as { data: WireSession }).data.id
      const events = yield* readEvents(url, alice.headers, id, "0")
      const kinds = events.frames.map((frame) => frame.event)
      expect(kinds.at(-1)).toBe("completed")
      expect(kinds.indexOf("transcript")).toBeLessThan(kinds.indexOf("suggestion"))
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done.status).toBe("completed")
      expect(done.suggestions).toHaveLength(3)
      expect(output).toContain("Session completed")
      expect(output).not.toMatch(/hiking/i)
    })
  )

  it.effect("the worker answers its liveness probe on WORKER_HEALTH_PORT, and nothing else there", () =>
    Effect.gen(function* () {
      // The worker's own probe server, not the API: the conformance harness does not judge it.
      notTheApiServer(`http://127.0.0.1:${healthPort}`)
      const live = yield* http(`http://127.0.0.1:${healthPort}/health/live`)
      expect(live.status).toBe(200)
      expect(live.body).toMatchObject({ success: true, data: { status: "ok" } })
      const other = yield* http(`http://127.0.0.1:${healthPort}/api/v1/users/me`)
      expect(other.status).toBe(404)
      expect(other.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
    })
  )
})
