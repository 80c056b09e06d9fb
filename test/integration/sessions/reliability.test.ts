/**
 * Reliability on the real BullMQ and Redis (one process, consumer included), the AI chain at a
 * wire fake of OpenAI (which reads the screenshot and writes the suggestions):
 * - cancel while the suggestion step runs: the attempt is interrupted (the provider's request
 *   aborted), the session ends `cancelled`, and no suggestion row is written;
 * - the suggestion stream failing mid-answer once, then answering on the retry (QUEUE_ATTEMPTS
 *   2): `completed`, the transcript once, the three suggestions once; the screenshot's full-size
 *   copies were deleted after OCR, before the retry, which does not need them.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeEach } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { eventually } from "../openers/support.ts"
import {
  awaitFinished,
  createSession,
  expectSavedOnce,
  FAKE_SUGGESTIONS as SUGGESTIONS,
  FAKE_VISION as VISION,
  readEvents,
  type WireSession,
  uploadPng
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
const storageRoot = mkdtempSync(join(tmpdir(), "wm-reliability-"))
afterAll(() => rmSync(storageRoot, { recursive: true, force: true }))
const stored = (key: string) => existsSync(join(storageRoot, "objects", ...key.split("/")))
beforeEach(() => openai.reset())

// The suggestion streams (the screenshot read carries the image).
const streamed = () => openai.requests.filter((request) => !request.image).length

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    storage: localTestStorage({ root: storageRoot }),
    config: {
      REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
      QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`,
      QUEUE_ATTEMPTS: "2",
      QUEUE_BACKOFF_MS: "0",
      ...openAiFakeConfig(openai.url),
      AI_TIMEOUT_MS: "60000"
    }
  }),
  { timeout: 120_000 }
)("sessions: reliability (BullMQ, Redis)", (it) => {
  it.effect("cancel while the suggestions are being written: interrupted, cancelled, no row after", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(VISION, { kind: "hang" })
      const aborted = openai.nextClientAbort()
      const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      const id = (created.body as { data: WireSession }).data.id
      yield* eventually(Effect.sync(streamed), (count) => count === 1, "the suggestion stream to start")
      expect(streamed()).toBe(1)

      const cancelled = yield* http(`${url}/api/v1/sessions/${id}/cancel`, { method: "POST", headers: alice.headers })
      expect(cancelled.status).toBe(200)
      expect(cancelled.body).toMatchObject({ success: true, data: { id, status: "cancelled", phase: null } })
      // The running attempt was interrupted: the provider saw its request aborted.
      yield* Effect.promise(() => aborted)

      const events = yield* readEvents(url, alice.headers, id, "0")
      const kinds = events.frames.map((frame) => frame.event)
      expect(kinds.at(-1)).toBe("cancelled")
      expect(kinds).not.toContain("suggestion")
      expect(kinds).not.toContain("completed")
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done).toMatchObject({ status: "cancelled", errorCode: null, suggestions: [] })
      expect(yield* sql("SELECT 1 FROM suggestions WHERE session_id = $1", [id])).toEqual([])
      const [row] = yield* sql<{ status: string }>("SELECT status FROM sessions WHERE id = $1", [id])
      expect(row?.status).toBe("cancelled")
      // Nothing asked the provider again (no retry of a cancelled job).
      expect(streamed()).toBe(1)
    })
  )

  it.effect("the suggestion stream fails mid-answer once, the retry completes the session once", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(VISION, { kind: "cut", afterChunks: 1, chunks: ["Half a sugg", "estion"] }, SUGGESTIONS)
      const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png", 70, 50)))
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      const id = (created.body as { data: WireSession }).data.id

      const events = yield* readEvents(url, alice.headers, id, "0")
      const kinds = events.frames.map((frame) => frame.event)
      expect(kinds.at(-1)).toBe("completed")
      expect(kinds).not.toContain("failed")
      expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)

      yield* expectSavedOnce(url, alice.headers, id)
      // One vision read (the retry resumed from the saved transcript), two suggestion streams.
      expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
      expect(streamed()).toBe(2)
      // No full-size copy is left (the retry ran after they were deleted); the thumbnail stays.
      const [keys] = yield* sql<{ original: string; image: string; thumbnail: string }>(
        `SELECT u.key AS original, si.image_key AS image, si.thumbnail_key AS thumbnail
           FROM session_images si JOIN uploads u ON u.id = si.upload_id WHERE si.session_id = $1`,
        [id]
      )
      expect(keys !== undefined && [stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([
        false,
        false,
        true
      ])
    })
  )
})
