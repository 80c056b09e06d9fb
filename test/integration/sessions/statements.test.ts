/**
 * What one session costs the database and Redis, phase by phase (issue #17): the SQL statements
 * of POST /uploads + the PUT (api), of POST /sessions (api, up to the enqueue), and of the job's
 * run (worker, from the enqueue to the end of its handler), with the wire fake provider; and the
 * Redis commands of the whole session. The bounds are behaviour: a change that adds a statement to
 * a phase fails here. Counted in this process at node-postgres and ioredis (test/support/statements.ts).
 */
import { expect, layer } from "@effect/vitest"
import { Console, Effect, Layer, Queue } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { SessionJobs } from "../../../src/modules/sessions/sessions.jobs.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { between, type Counted, ignore, installCounters, mark, type Mark } from "../../support/statements.ts"
import { twoUsers } from "../../support/users.ts"
import { createSession, FAKE_SUGGESTIONS, FAKE_VISION, uploadPng, type WireSession } from "./support.ts"

/**
 * Upper bounds per phase (before #17: upload 3, create 11, job 25). Upload counts the local storage's
 * PUT, which checks the tombstone (with S3 it is 1). With the daily spend cap on, as deployed by
 * default: each AI call's admission and release are 2 of the worker's (the admission was a
 * transaction of 7 statements: 32 in all, where this bound was 16 with the cap off).
 */
const BOUNDS = { upload: 2, create: 3, worker: 20 }

installCounters()
const openai = await startFakeOpenAI()
const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const prefix = `wm-test-${randomBytes(4).toString("hex")}`
// The test's own probe of the job's hash, left out of the counts.
const probe = new IORedis(redisUrl, { lazyConnect: true })
ignore(probe)
afterAll(async () => {
  await openai.close()
  probe.disconnect()
})

// Two different screenshots: each run reads a new image (the OCR cache, keyed by the pixels, must not answer).
const screenshots: Array<Buffer> = []
beforeAll(async () => {
  screenshots.push(await chatScreenshotPng({ header: "Sam" }), await chatScreenshotPng({ header: "Robin" }))
})

/** Where the counts were when each session's job was enqueued, and when its handler ended. */
const enqueuedAt = new Map<string, Mark>()
const handled = Effect.runSync(Queue.unbounded<{ readonly id: string; readonly at: Mark }>())

/** The real queue, with the two marks taken around it: no statement or command of its own. */
const observedJobs = Layer.effect(
  SessionJobs,
  Effect.map(SessionJobs, (jobs) =>
    SessionJobs.of({
      ...jobs,
      enqueue: (id, payload, options) =>
        Effect.suspend(() => (enqueuedAt.set(id, mark()), jobs.enqueue(id, payload, options))),
      consume: (handler, options) =>
        jobs.consume(
          (job) =>
            Effect.ensuring(
              handler(job),
              Effect.suspend(() => Queue.offer(handled, { id: job.id, at: mark() }))
            ),
          options
        )
    })
  )
).pipe(Layer.provide(SessionJobs.layer))

const report = (phase: string, counted: Counted) =>
  Console.log(
    [
      `${phase}: ${counted.sql.length} SQL statements, ${counted.redis.length} Redis commands`,
      ...counted.sql.map((statement) => `  sql   ${statement}`),
      `  redis ${counted.redis.join(" ")}`
    ].join("\n")
  )

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    jobs: observedJobs,
    config: {
      REDIS_URL: redisUrl,
      QUEUE_PREFIX: prefix,
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_BREAKER_FAILURES: "1000",
      // Nothing periodic in the windows: no sweep, the token's mapping cached throughout.
      UPLOAD_SWEEP_INTERVAL_SECONDS: "3600",
      USER_CACHE_TTL_MS: "600000"
    }
  }),
  { timeout: 120_000 }
)("sessions: SQL statements and Redis commands per session", (it) => {
  it.effect("upload, create and the job's run stay within their bounds", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.setFallback(FAKE_SUGGESTIONS)
      yield* Effect.promise(() => probe.connect())

      const run = (bytes: Buffer) =>
        Effect.gen(function* () {
          openai.enqueue(FAKE_VISION)
          const start = mark()
          const uploadId = yield* uploadPng(url, alice.headers, bytes)
          const uploaded = mark()
          const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
          expect(created.status).toBe(202)
          const id = (created.body as { data: WireSession }).data.id
          const done = yield* Queue.take(handled)
          expect(done.id).toBe(id)
          const enqueued = enqueuedAt.get(id)
          if (enqueued === undefined) return yield* Effect.dieMessage("the job was not enqueued")
          // BullMQ completes the job after the handler: its commands belong to the session too.
          yield* eventually(
            Effect.promise(() => probe.hget(`${prefix}:sessions:${id}`, "finishedOn")),
            (finishedOn) => finishedOn !== null,
            "the job to be completed"
          )
          return {
            upload: between(start, uploaded),
            create: between(uploaded, enqueued),
            worker: between(enqueued, done.at),
            session: between(start)
          }
        })

      // The first run warms what is cached (the queue's scripts, the provider's client); the second is counted.
      yield* run(screenshots[0] ?? Buffer.alloc(0))
      const counts = yield* run(screenshots[1] ?? Buffer.alloc(0))
      yield* report("upload (api)", counts.upload)
      yield* report("create (api)", counts.create)
      yield* report("job (worker)", counts.worker)
      yield* report("session, all", counts.session)
      expect(counts.upload.sql.length).toBeLessThanOrEqual(BOUNDS.upload)
      expect(counts.create.sql.length).toBeLessThanOrEqual(BOUNDS.create)
      expect(counts.worker.sql.length).toBeLessThanOrEqual(BOUNDS.worker)
      // The job sends nothing through Prisma's client (whose SQL names the schema: `"public"."…"`),
      // so a worker never instantiates its query compiler for sessions (bench/README.md, "The spend cap").
      expect(counts.worker.sql.filter((statement) => statement.includes('"public".'))).toEqual([])
    })
  )
})
