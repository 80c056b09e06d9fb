/**
 * Scale-out as in production: two api processes (`src/main/api.ts`) and a worker process
 * (`src/main/worker.ts`) on this machine's PostgreSQL and Redis, sharing a storage folder. A
 * session created through instance A is followed over WebSocket on instance B: the job crosses
 * BullMQ to the worker, its progress crosses Redis pub/sub to B's socket.
 */
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { bearer, newClerkId, tokenFor } from "../../support/auth.ts"
import { childAppEnv } from "../../support/app-env.ts"
import { cleanEnv, freePort, type Running, start, waitForReady } from "../../support/processes.ts"
import { connectAs, followToEnd } from "../../support/ws.ts"
import { createSession, uploadPng, type WireSession } from "../sessions/support.ts"

const dataDir = mkdtempSync(join(tmpdir(), "wingmate-instances-"))
const running: Array<Running> = []
let apiA = ""
let apiB = ""

beforeAll(async () => {
  const shared = { ...childAppEnv(dataDir), RATE_LIMIT_ENABLED: "false" }
  const [portA, portB] = [await freePort(), await freePort()]
  apiA = `http://127.0.0.1:${portA}`
  apiB = `http://127.0.0.1:${portB}`
  running.push(
    start("src/main/api.ts", cleanEnv({ ...shared, PORT: String(portA), PUBLIC_BASE_URL: apiA })),
    start("src/main/api.ts", cleanEnv({ ...shared, PORT: String(portB), PUBLIC_BASE_URL: apiB })),
    start("src/main/worker.ts", cleanEnv(shared))
  )
  const [a, b] = running
  await Promise.all([waitForReady(apiA, a), waitForReady(apiB, b)])
  // Three processes start on this machine's cores beside the other suites: more than the default.
}, 180_000)

afterAll(async () => {
  await Promise.all(
    running.map((process) => {
      process.child.kill("SIGTERM")
      return process.exited
    })
  )
  rmSync(dataDir, { recursive: true, force: true })
})

describe("realtime across instances: two api processes and a worker", () => {
  it("a client on instance B follows, through completed, a session created through instance A", async ({ signal }) => {
    const clerkId = newClerkId("scale")
    const token = tokenFor({ clerkId, email: `${clerkId}@test.dev` })
    const headers = bearer(token)
    const png = await chatScreenshotPng()

    const events = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const uploadId = yield* uploadPng(apiA, headers, png)
          const created = yield* createSession(apiA, headers, { uploadIds: [uploadId] })
          expect(created.status).toBe(202)
          const session = (created.body as { data: WireSession }).data

          const socket = yield* connectAs(apiB, token)
          yield* socket.send({ type: "subscribe", sessionId: session.id, afterSeq: 0 })
          return yield* followToEnd(socket, session.id)
        })
      ),
      { signal }
    )
    const kinds = events.map((event) => event["event"])
    expect(kinds.at(-1)).toBe("completed")
    expect(kinds).toContain("transcript")
    expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)
    // Replayed from seq 0: every event once, in order.
    expect(events.map((event) => event["seq"])).toEqual(events.map((_, i) => i + 1))
  }, 120_000)
})
