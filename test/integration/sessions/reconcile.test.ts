/**
 * A session whose job is lost (acknowledged, then gone: Redis restarted empty or failed over
 * between the enqueue and the consumer) does not stay `queued` for ever: the worker's reconciler
 * finds it untouched for SESSION_RECONCILE_SECONDS with no job, enqueues it again, and the
 * session completes, each row saved once. A session whose job the queue failed without running it
 * (as after too many stalls) fails INTERNAL_ERROR, its daily unit given back. On the real BullMQ and Redis, the AI chain at a wire
 * fake of OpenAI, and a database of its own: the reconciler scans every session of its database,
 * and the other suites' (sharing theirs, each with its own queue) must not be run here.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { afterAll, beforeAll } from "vitest"
import { Db } from "../../../src/core/db/db.ts"
import { applyMigrations, migrationsDir, pgExecutor } from "../../../src/core/db/migrations.ts"
import { Redis } from "../../../src/core/redis.ts"
import { type ConsumeOptions, type Job, JobFailedPermanently } from "../../../src/core/queue/job-queue.ts"
import { SessionJobs, type SessionJob } from "../../../src/modules/sessions/sessions.jobs.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { eventually } from "../../support/eventually.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import {
  awaitFinished,
  createSession,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  getSession,
  uploadPng,
  type WireSession
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())

const adminUrl = process.env["TEST_DATABASE_ADMIN_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
const databaseName = `wingmate_reconcile_${process.pid}_${randomBytes(3).toString("hex")}`
const databaseUrl = Object.assign(new URL(adminUrl), { pathname: `/${databaseName}` }).toString()
const onClient = async <A>(url: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}
beforeAll(async () => {
  await onClient(adminUrl, (admin) => admin.query(`CREATE DATABASE "${databaseName}"`))
  await onClient(databaseUrl, (client) => applyMigrations(pgExecutor(client), migrationsDir))
})
afterAll(() => onClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`)))
/** The reconciler's counter for `action`, as `/metrics` shows it (0 before its first count). */
const reconciled = (url: string, action: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${url}/metrics`)).text()
    const line = new RegExp(`^wingmate_sessions_reconciled_total\\{[^}]*action="${action}"[^}]*\\} (\\d+)`, "m").exec(
      text
    )
    return Number(line?.[1] ?? 0)
  })
const rows = (text: string, id: string) =>
  Effect.promise(() => onClient(databaseUrl, async (client) => (await client.query(text, [id])).rows))

/**
 * The sessions queue on BullMQ, but its first enqueue is acknowledged and lost, and the job of a
 * session of a user in `givenUp` is failed by the queue itself, the pipeline never run (as BullMQ fails a
 * job that stalled too often: its worker died each time).
 */
let lost = 0
/** Users whose sessions' jobs the queue fails. */
const givenUp = new Set<string>()
const losingFirstJob = Layer.effect(
  SessionJobs,
  Effect.map(SessionJobs, (queue) => ({
    ...queue,
    enqueue: (...args: Parameters<typeof queue.enqueue>) =>
      lost++ === 0 ? Effect.succeed("enqueued" as const) : queue.enqueue(...args),
    consume: <E, R>(handler: (job: Job<SessionJob>) => Effect.Effect<void, E, R>, options?: ConsumeOptions) =>
      queue.consume(
        (job: Job<SessionJob>): Effect.Effect<void, E | JobFailedPermanently, R> =>
          givenUp.has(job.payload.userId) ? Effect.fail(new JobFailedPermanently({ reason: "stalled" })) : handler(job),
        options
      )
  }))
).pipe(Layer.provide(SessionJobs.layer))

layer(
  testServer({
    db: Layer.suspend(() => Db.postgres({ url: Redacted.make(databaseUrl), poolMax: 4, migrate: false })),
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
      const id = (created.body as { data: WireSession }).data.id
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done).toMatchObject({ status: "completed", errorCode: null })
      expect(done.transcript.map((message) => message.text)).toEqual([
        "Are you free on Saturday?",
        "I might be, what's the plan?"
      ])
      expect(done.suggestions.map((suggestion) => suggestion.text)).toEqual([
        "Coffee sounds great",
        "A walk by the river?",
        "Surprise me"
      ])
      expect(yield* rows("SELECT position FROM transcript_messages WHERE session_id = $1", id)).toHaveLength(2)
      expect(yield* rows("SELECT position FROM suggestions WHERE session_id = $1", id)).toHaveLength(3)
      // The second enqueue was the reconciler's; the provider read the screenshot once.
      expect(lost).toBe(2)
      expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
      expect(yield* reconciled(url, "requeued")).toBe(1)
    })
  )

  // Before: the reconciler saw a job (failed) and left the session `queued` for ever. Then: it failed
  // the session and gave the unit back in a second statement, so a client could see the session
  // failed with its unit still taken (and a crash between the two kept it taken).
  it.scoped(
    "a job the queue failed without running the session: the session fails and its daily unit is given back, together",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { bob } = yield* twoUsers(url)
        givenUp.add(bob.id)
        const uploadId = yield* uploadPng(url, bob.headers, yield* Effect.promise(() => tinyImage("png")))
        const created = yield* createSession(url, bob.headers, { uploadIds: [uploadId] })
        expect(created.status).toBe(202)
        const id = (created.body as { data: WireSession }).data.id
        // The unit's row held by another transaction (the reconciler waits SESSION_RECONCILE_SECONDS first).
        const holder = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new pg.Client({ connectionString: databaseUrl })
            await client.connect()
            await client.query("BEGIN")
            await client.query("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'sessions' FOR UPDATE", [
              bob.id
            ])
            return client
          }),
          (client) => Effect.promise(() => client.end())
        )
        // The reconciler has reached the unit: its statement waits on the row.
        yield* eventually(
          rows(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            databaseName
          ),
          (waiting) => waiting[0]?.["n"] === 1,
          "the reconciler to wait on the unit's row"
        )
        const meanwhile = yield* getSession(url, bob.headers, id)
        expect((meanwhile.body as { data: WireSession }).data.status).not.toBe("failed")
        yield* Effect.promise(() => holder.query("COMMIT"))
        const done = yield* awaitFinished(url, bob.headers, id)
        expect(done).toMatchObject({ status: "failed", errorCode: "INTERNAL_ERROR" })
        const units = yield* rows("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'sessions'", bob.id)
        expect(units).toEqual([{ used: 0 }])
        expect(yield* reconciled(url, "failed")).toBe(1)
      })
  )
})
