/**
 * A session whose job is lost (acknowledged, then gone: Redis restarted empty or failed over
 * between the enqueue and the consumer) does not stay `queued` for ever: the worker's reconciler
 * finds it untouched for SESSION_RECONCILE_SECONDS with no job, enqueues it again, and the
 * session completes, each row saved once. On the real BullMQ and Redis, the AI chain at a wire
 * fake of OpenAI.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { afterAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { SessionJobs } from "../../../src/modules/sessions/sessions.jobs.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import {
  createSession,
  expectSavedOnce,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  uploadPng,
  type WireSession
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())

/** The sessions queue on BullMQ, but its first enqueue is acknowledged and lost. */
let lost = 0
const losingFirstJob = Layer.effect(
  SessionJobs,
  Effect.map(SessionJobs, (queue) => ({
    ...queue,
    enqueue: (...args: Parameters<typeof queue.enqueue>) =>
      lost++ === 0 ? Effect.succeed("enqueued" as const) : queue.enqueue(...args)
  }))
).pipe(Layer.provide(SessionJobs.layer))

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    jobs: losingFirstJob,
    config: {
      REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
      QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`,
      SESSION_RECONCILE_SECONDS: "1",
      ...openAiFakeConfig(openai.url)
    }
  }),
  { timeout: 120_000 }
)("sessions: a lost job is found again", (it) => {
  it.effect("acknowledged and lost: the reconciler enqueues it again, the session completes once", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
      const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
      const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(202)
      expect(lost).toBe(1)
      yield* expectSavedOnce(url, alice.headers, (created.body as { data: WireSession }).data.id)
      // The second enqueue was the reconciler's; the provider read the screenshot once.
      expect(lost).toBe(2)
      expect(openai.requests.filter((request) => !request.stream)).toHaveLength(1)
    })
  )
})
