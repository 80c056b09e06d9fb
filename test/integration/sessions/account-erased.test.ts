/**
 * An account erased while one of its sessions is processed in the worker (`DELETE /users/me`
 * from another device, the job already running, so the erasure cannot take it off the queue):
 * the attempt stops quietly, as for a session deleted meanwhile. Its handler succeeds (the job is
 * neither failed nor retried: no retry loop writing for a user who is gone), and nothing of the
 * user is written after the erasure. Deterministically: the pipeline's handler is driven by the
 * test, the provider holds its answer while the account is erased, then goes on. The spend cap is
 * on, as in production: a call that starts after the erasure reserves under it.
 *
 * A regeneration (the api) whose account is erased meanwhile ends `UNAUTHORIZED` with
 * `details.reason: "account-erased"` (SSE `failed`, RPC `Unauthorized`), one whose session is
 * deleted meanwhile `NOT_FOUND`: never an internal error.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Queue } from "effect"
import { afterAll, beforeEach } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { captureLogs } from "../../fixtures/queue-contract.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http, readStreamed } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { rpcRequest, rpcStreamed } from "../../support/rpc-socket.ts"
import { ERASED, eraseAccount, erasedRpcExit, provisionUser, type TestUser } from "../../support/users.ts"
import {
  createSession,
  drivenSessionJobs,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  sseFrames,
  uploadPng,
  type WireSession
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

/** The pipeline's job handler, driven by the test (the queue itself runs nothing). */
const { handler, enqueued, layer: drivenJobs } = drivenSessionJobs()

/** What the server logs: nothing at ERROR for a race the server expects (a user erased meanwhile). */
const logs = captureLogs()
beforeEach(() => {
  logs.lines.length = 0
})

const Server = testServer({
  db: TestDb(),
  logs: logs.layer,
  consumer: true,
  jobs: drivenJobs,
  config: { ...openAiFakeConfig(openai.url), AI_DAILY_SPEND_CAP_MICROS: "100000000" }
})

/** Every row that names the user or the session: none may be written after the erasure. */
const rowsOf = (userId: string, sessionId: string) =>
  sql(
    `SELECT 'users' AS t, count(*)::int AS n FROM users WHERE id = $1
     UNION ALL SELECT 'sessions', count(*)::int FROM sessions WHERE user_id = $1
     UNION ALL SELECT 'uploads', count(*)::int FROM uploads WHERE user_id = $1
     UNION ALL SELECT 'ocr_results', count(*)::int FROM ocr_results WHERE user_id = $1
     UNION ALL SELECT 'ai_calls', count(*)::int FROM ai_calls WHERE user_id = $1 OR session_id = $2
     UNION ALL SELECT 'ai_spend_reservations', count(*)::int FROM ai_spend_reservations WHERE user_id = $1
     UNION ALL SELECT 'usage_counters', count(*)::int FROM usage_counters WHERE user_id = $1
     UNION ALL SELECT 'transcript_messages', count(*)::int FROM transcript_messages WHERE session_id = $2
     UNION ALL SELECT 'suggestions', count(*)::int FROM suggestions WHERE session_id = $2`,
    [userId, sessionId]
  )

/**
 * Nothing of the user left, and nothing logged as an error (before: "AI ledger write failed",
 * its entry refused by the user's foreign key, with Prisma's text).
 */
const expectNothingLeftOf = (userId: string, sessionId: string) =>
  Effect.gen(function* () {
    const rows = yield* rowsOf(userId, sessionId)
    expect(rows.filter((row) => row["n"] !== 0)).toEqual([])
    expect(logs.lines.filter((line) => line.startsWith("ERROR"))).toEqual([])
  })

/** A regeneration's answer, held after its first line (saved) until `released` completes. */
const heldRegeneration = (released: Deferred.Deferred<void>) =>
  openai.enqueue({
    kind: "ok",
    text: "A brand new line\nOne more idea\nAnother idea",
    chunks: ["A brand new line\n", "One more idea\n", "Another idea"],
    holdAfter: { deltas: 1, until: Effect.runPromise(Deferred.await(released)) }
  })

/** A session of one screenshot, created as `user`: its job, as the worker would take it. */
const sessionJob = (url: string, user: TestUser) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, user.headers, yield* Effect.promise(() => tinyImage("png")))
    const created = yield* createSession(url, user.headers, { uploadIds: [uploadId] })
    expect(created.status).toBe(202)
    const id = (created.body as { data: WireSession }).data.id
    const job = yield* Queue.take(enqueued)
    expect(job.id).toBe(id)
    return job
  })

/** A session of `user` completed by its job (driven here): its id. */
const completedSession = (url: string, user: TestUser) =>
  Effect.gen(function* () {
    openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
    const job = yield* sessionJob(url, user)
    const attempt = yield* Deferred.await(handler)
    expect(yield* attempt(job)).toStrictEqual(Exit.void)
    return job.id
  })

/** The regeneration's SSE events, read as they come; `midway` runs once its first suggestion is saved. */
const regenerateSse = (url: string, user: TestUser, sessionId: string, midway: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const events: Array<{ event: string; data: unknown }> = []
    yield* readStreamed(
      `${url}/api/v1/sessions/${sessionId}/suggestions`,
      {
        method: "POST",
        headers: { ...user.headers, "content-type": "application/json", accept: "text/event-stream" },
        body: "{}"
      },
      "\n\n",
      async (frame) => {
        const [event] = sseFrames(frame)
        if (event === undefined) return
        events.push({ event: event.event, data: event.data })
        if (event.event === "suggestion") await Effect.runPromise(midway)
      }
    )
    return events
  })

layer(Server, { timeout: 120_000 })("sessions: an account erased while its session is processed", (it) => {
  it.effect("during the suggestions (one saved): the attempt stops quietly, nothing of the user is left", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const release = yield* Deferred.make<void>()
      openai.enqueue(FAKE_VISION, {
        kind: "ok",
        text: "First idea here\nSecond idea here\nThird idea here",
        chunks: ["First idea here\n", "Second idea here\n", "Third idea here"],
        holdAfter: { deltas: 1, until: Effect.runPromise(Deferred.await(release)) }
      })
      const job = yield* sessionJob(url, alice)
      const attempt = yield* Deferred.await(handler)

      const running = yield* Effect.fork(attempt(job))
      yield* eventually(
        sql("SELECT 1 FROM suggestions WHERE session_id = $1", [job.id]),
        (rows) => rows.length === 1,
        "the first suggestion saved"
      )
      yield* eraseAccount(url, alice)
      yield* Deferred.succeed(release, undefined)

      // Stopped as for a session deleted meanwhile: the job is neither failed nor retried.
      expect(yield* Fiber.join(running)).toStrictEqual(Exit.void)
      yield* expectNothingLeftOf(alice.id, job.id)
    })
  )

  it.effect("during the screenshot's read (no suggestion asked yet): the attempt stops quietly, nothing is left", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const release = yield* Deferred.make<void>()
      const asked = yield* Deferred.make<void>()
      openai.enqueue(
        {
          ...FAKE_VISION,
          arrived: () => Effect.runSync(Deferred.succeed(asked, undefined)),
          until: Effect.runPromise(Deferred.await(release))
        },
        { kind: "ok", text: "First idea here\nSecond idea here\nThird idea here" }
      )
      const job = yield* sessionJob(url, alice)
      const attempt = yield* Deferred.await(handler)

      const running = yield* Effect.fork(attempt(job))
      yield* Deferred.await(asked)
      yield* eraseAccount(url, alice)
      yield* Deferred.succeed(release, undefined)

      expect(yield* Fiber.join(running)).toStrictEqual(Exit.void)
      yield* expectNothingLeftOf(alice.id, job.id)
    })
  )

  it.effect("a regeneration (SSE) of an account erased meanwhile: failed UNAUTHORIZED account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const id = yield* completedSession(url, alice)
      const released = yield* Deferred.make<void>()
      heldRegeneration(released)
      const events = yield* regenerateSse(
        url,
        alice,
        id,
        Effect.zipRight(eraseAccount(url, alice), Deferred.succeed(released, undefined))
      )
      // Before: `failed` INTERNAL_ERROR "An unexpected error occurred".
      // The second line's delta went out as it came; its save was refused.
      expect(events.map((event) => event.event)).toEqual(["delta", "suggestion", "delta", "failed"])
      expect(events.at(-1)?.data).toEqual({
        ...ERASED,
        batch: 1,
        suggestions: [expect.objectContaining({ text: "A brand new line" })]
      })
      yield* expectNothingLeftOf(alice.id, id)
    })
  )

  it.effect("a regeneration (SSE) whose session is deleted meanwhile: failed NOT_FOUND", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const id = yield* completedSession(url, alice)
      const released = yield* Deferred.make<void>()
      heldRegeneration(released)
      const deleteSession = Effect.gen(function* () {
        const res = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
        expect(res.status).toBe(204)
      })
      const events = yield* regenerateSse(
        url,
        alice,
        id,
        Effect.zipRight(deleteSession, Deferred.succeed(released, undefined))
      )
      // Before: `failed` INTERNAL_ERROR "An unexpected error occurred".
      // The second line's delta went out as it came; its save was refused.
      expect(events.map((event) => event.event)).toEqual(["delta", "suggestion", "delta", "failed"])
      expect(events.at(-1)?.data).toEqual({
        code: "NOT_FOUND",
        message: "Session not found",
        batch: 1,
        suggestions: [expect.objectContaining({ text: "A brand new line" })]
      })
      expect(yield* sql("SELECT 1 FROM suggestions WHERE session_id = $1", [id])).toEqual([])
      expect(logs.lines.filter((line) => line.startsWith("ERROR"))).toEqual([])
    })
  )

  it.effect("a regeneration (RPC) of an account erased meanwhile: the stream fails Unauthorized account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const alice = yield* provisionUser(url, "alice")
      const id = yield* completedSession(url, alice)
      const released = yield* Deferred.make<void>()
      heldRegeneration(released)
      const lines = yield* rpcStreamed(
        url,
        rpcRequest("1", "sessions.regenerate", { sessionId: id }, alice.token),
        async (line) => {
          if (line.includes('"_tag":"Suggestion"')) {
            await Effect.runPromise(Effect.zipRight(eraseAccount(url, alice), Deferred.succeed(released, undefined)))
          }
        }
      )
      // Before: `Exit` Failure Die { name: "InternalError", message: "An unexpected error occurred" }.
      expect(lines.at(-1)).toEqual(erasedRpcExit("1"))
      yield* expectNothingLeftOf(alice.id, id)
    })
  )
})
