/**
 * `Idempotency-Key` on the POSTs that create or cost something (uploads, sessions, opener
 * generation, suggestion regeneration), against real Redis and PostgreSQL: a retry with the same
 * key and body replays the first answer and does nothing again (rows, quota units, model calls
 * counted); another body is 422; a duplicate while the first runs is 409; keys are per user;
 * an invalid key is 400; what is kept expires after 24 h (the Redis TTL, read); an event stream
 * is replayed as its events.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { Redis as IORedis } from "ioredis"
import { afterAll, beforeEach } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql, TestDb } from "../../support/database.ts"
import { failure, http, postJson } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { generateJson, generateSse, openerRows } from "../openers/support.ts"
import {
  awaitFinished,
  createSession,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  readEvents,
  uploadPng,
  type WireSession
} from "../sessions/support.ts"

const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const admin = new IORedis(redisUrl, { maxRetriesPerRequest: 2 })
const openai = await startFakeOpenAI()
afterAll(async () => {
  await openai.close()
  admin.disconnect()
})
beforeEach(() => {
  openai.reset()
})

const withKey = (headers: Record<string, string>, key: string) => ({ ...headers, "idempotency-key": key })

const answer = (...lines: ReadonlyArray<string>) =>
  openai.enqueue({ kind: "ok", text: lines.join(""), chunks: lines, usage: { input: 100, output: 10 } })

const usage = (userId: string, kind: string) =>
  Effect.map(
    sql<{ used: number }>("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = $2", [userId, kind]),
    (rows) => rows.reduce((sum, row) => sum + row.used, 0)
  )

const count = (query: string, userId: string) =>
  Effect.map(sql<{ n: number }>(query, [userId]), (rows) => rows[0]?.n ?? 0)

const uploadCount = (userId: string) => count("SELECT count(*)::int AS n FROM uploads WHERE user_id = $1", userId)
const sessionCount = (userId: string) => count("SELECT count(*)::int AS n FROM sessions WHERE user_id = $1", userId)

/** The user's idempotency entries in Redis, with their TTL in ms. */
const entriesOf = (clerkId: string) =>
  Effect.promise(async () => {
    const keys = await admin.keys(`wingmate:idempotency:${clerkId}:*`)
    return Promise.all(keys.map(async (key) => ({ key, ttlMs: await admin.pttl(key) })))
  })

const MISSING = "missingsession0000"

/** Waits (polling Redis, bounded) until the user has no entry left: a released key. */
const untilNoEntries = (clerkId: string) =>
  Effect.promise(async () => {
    const deadline = Date.now() + 10_000
    while ((await admin.keys(`wingmate:idempotency:${clerkId}:*`)).length > 0) {
      if (Date.now() > deadline) throw new Error("the key was not released")
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })

/** A POST with `Accept: text/event-stream`, read to its end. */
const streamed = (url: string, path: string, headers: Record<string, string>, payload: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...headers },
      body: JSON.stringify(payload)
    })
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

interface Operation {
  readonly parameters?: ReadonlyArray<unknown>
  readonly responses: Record<string, { readonly headers?: Record<string, unknown> } | undefined>
}

const UPLOAD = { contentType: "image/png", contentLength: 68, purpose: "session" }

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    config: {
      REDIS_URL: redisUrl,
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
      AI_TIMEOUT_MS: "5000",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      QUEUE_ATTEMPTS: "1"
    }
  }),
  { timeout: 120_000 }
)("Idempotency-Key", (it) => {
  it.effect("POST /uploads: the retry replays the first ticket, no second upload row; the entry lives 24 h", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const body = JSON.stringify(UPLOAD)
      const first = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "upload-1"))
      expect(first.status).toBe(201)
      expect(first.headers.get("idempotent-replayed")).toBeNull()
      const again = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "upload-1"))
      expect(again.status).toBe(201)
      expect(again.headers.get("idempotent-replayed")).toBe("true")
      expect(again.headers.get("content-type")).toMatch(/^application\/json/)
      expect(again.body).toEqual(first.body)
      expect(yield* uploadCount(alice.id)).toBe(1)

      // Kept 24 h: the TTL is read, not waited for.
      const entries = yield* entriesOf(alice.clerkId)
      expect(entries).toHaveLength(1)
      expect(entries[0]?.ttlMs).toBeGreaterThan(24 * 3_600_000 - 60_000)
      expect(entries[0]?.ttlMs).toBeLessThanOrEqual(24 * 3_600_000)

      // Without the key, or with another one, the operation runs.
      expect((yield* postJson(`${url}/api/v1/uploads`, body, alice.headers)).status).toBe(201)
      expect((yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "upload-2"))).status).toBe(201)
      expect(yield* uploadCount(alice.id)).toBe(3)
    })
  )

  it.effect("the same key with another body: 422 IDEMPOTENCY_KEY_REUSED, nothing created", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const first = yield* postJson(`${url}/api/v1/uploads`, JSON.stringify(UPLOAD), withKey(alice.headers, "k"))
      expect(first.status).toBe(201)
      const other = yield* postJson(
        `${url}/api/v1/uploads`,
        JSON.stringify({ ...UPLOAD, contentLength: 69 }),
        withKey(alice.headers, "k")
      )
      expect(other.status).toBe(422)
      expect(other.body).toEqual(
        failure(
          "IDEMPOTENCY_KEY_REUSED",
          "This Idempotency-Key was used with another request body (or Accept mode): use a new key for a new request"
        )
      )
      expect(yield* uploadCount(alice.id)).toBe(1)
    })
  )

  it.effect("keys are per user: Bob's request with Alice's key runs for Bob, and never sees Alice's answer", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const body = JSON.stringify(UPLOAD)
      const mine = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "shared"))
      const theirs = yield* postJson(`${url}/api/v1/uploads`, body, withKey(bob.headers, "shared"))
      expect(mine.status).toBe(201)
      expect(theirs.status).toBe(201)
      expect(theirs.headers.get("idempotent-replayed")).toBeNull()
      const id = (res: { body: unknown }) => (res.body as { data: { uploadId: string } }).data.uploadId
      expect(id(theirs)).not.toBe(id(mine))
      // Each one's retry replays their own answer.
      const myRetry = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "shared"))
      const theirRetry = yield* postJson(`${url}/api/v1/uploads`, body, withKey(bob.headers, "shared"))
      expect(myRetry.headers.get("idempotent-replayed")).toBe("true")
      expect(theirRetry.headers.get("idempotent-replayed")).toBe("true")
      expect(id(myRetry)).toBe(id(mine))
      expect(id(theirRetry)).toBe(id(theirs))
      expect(yield* uploadCount(alice.id)).toBe(1)
      expect(yield* uploadCount(bob.id)).toBe(1)
    })
  )

  it.effect(
    "an invalid key (empty, over 255 characters, not printable ASCII): 400 VALIDATION_ERROR, nothing created",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        for (const key of ["", "x".repeat(256), "caf\u00e9"]) {
          const res = yield* http(`${url}/api/v1/uploads`, {
            method: "POST",
            headers: { ...alice.headers, "content-type": "application/json", "idempotency-key": key },
            body: JSON.stringify(UPLOAD)
          })
          expect(res.status).toBe(400)
          expect(res.body).toEqual(
            failure("VALIDATION_ERROR", "The request is invalid: see details.issues", {
              issues: [{ path: "Idempotency-Key", message: "Expected 1 to 255 printable ASCII characters" }]
            })
          )
        }
        expect(yield* uploadCount(alice.id)).toBe(0)
        expect(yield* entriesOf(alice.clerkId)).toEqual([])
      })
  )

  it.effect(
    "POST /sessions retried: the same 202 session (not 409 UPLOAD_ALREADY_USED), one session, one quota unit",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
        openai.setFallback({ kind: "status", status: 500 })
        const first = yield* createSession(url, withKey(alice.headers, "session-1"), { uploadIds: [uploadId] })
        expect(first.status).toBe(202)
        const again = yield* createSession(url, withKey(alice.headers, "session-1"), { uploadIds: [uploadId] })
        expect(again.status).toBe(202)
        expect(again.headers.get("idempotent-replayed")).toBe("true")
        expect(again.body).toEqual(first.body)
        expect(yield* sessionCount(alice.id)).toBe(1)
        expect(yield* usage(alice.id, "sessions")).toBe(1)
        yield* awaitFinished(url, alice.headers, (first.body as { data: WireSession }).data.id)
      })
  )

  it.effect("generate (JSON) retried: the same openers, no second model call, row or quota unit", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      answer("Coffee or tea?\n")
      const payload = { profile: { name: "Sam" }, count: 1 }
      const first = yield* generateJson(url, withKey(alice.headers, "gen-1"), payload)
      expect(first.status).toBe(200)
      const again = yield* generateJson(url, withKey(alice.headers, "gen-1"), payload)
      expect(again.status).toBe(200)
      expect(again.headers.get("idempotent-replayed")).toBe("true")
      expect(again.body).toEqual(first.body)
      expect(openai.requests).toHaveLength(1)
      expect(yield* openerRows(alice.id)).toHaveLength(1)
      expect(yield* usage(alice.id, "openers")).toBe(1)
    })
  )

  it.effect("generate (SSE) retried: the same events replayed as a stream; the JSON mode with that key is 422", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      answer("Coffee or tea?\n", "Pizza or tacos?\n")
      const payload = { profile: { name: "Sam" }, count: 2 }
      const first = yield* generateSse(url, withKey(alice.headers, "sse-1"), payload)
      expect(first.status).toBe(200)
      expect(first.events.filter((event) => event.event === "done")).toHaveLength(2)
      const again = yield* generateSse(url, withKey(alice.headers, "sse-1"), payload)
      expect(again.status).toBe(200)
      expect(again.headers.get("content-type")).toMatch(/^text\/event-stream/)
      expect(again.headers.get("idempotent-replayed")).toBe("true")
      expect(again.events).toEqual(first.events)
      expect(openai.requests).toHaveLength(1)
      expect(yield* openerRows(alice.id)).toHaveLength(2)
      expect(yield* usage(alice.id, "openers")).toBe(1)

      const json = yield* generateJson(url, withKey(alice.headers, "sse-1"), payload)
      expect(json.status).toBe(422)
      expect(json.body).toMatchObject({ success: false, error: { code: "IDEMPOTENCY_KEY_REUSED" } })
      expect(openai.requests).toHaveLength(1)
    })
  )

  it.effect(
    "a duplicate while the first runs: 409 IDEMPOTENCY_KEY_IN_FLIGHT with Retry-After; then the first's answer",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const arrived = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        openai.enqueue({
          kind: "ok",
          text: "Coffee or tea?\n",
          arrived: () => Effect.runSync(Deferred.succeed(arrived, undefined)),
          until: Effect.runPromise(Deferred.await(release))
        })
        const payload = { profile: { name: "Sam" }, count: 1 }
        const first = yield* Effect.fork(generateJson(url, withKey(alice.headers, "slow"), payload))
        yield* Deferred.await(arrived)

        const duplicate = yield* generateJson(url, withKey(alice.headers, "slow"), payload)
        expect(duplicate.status).toBe(409)
        expect(duplicate.body).toEqual(
          failure("IDEMPOTENCY_KEY_IN_FLIGHT", "A request with this Idempotency-Key is still running: retry later")
        )
        expect(duplicate.headers.get("retry-after")).toBe("1")
        // Another body with that key is refused at once too, as a reuse.
        const other = yield* generateJson(url, withKey(alice.headers, "slow"), { ...payload, count: 2 })
        expect(other.status).toBe(422)

        yield* Deferred.succeed(release, undefined)
        const done = yield* Fiber.join(first)
        expect(done.status).toBe(200)
        const replay = yield* generateJson(url, withKey(alice.headers, "slow"), payload)
        expect(replay.status).toBe(200)
        expect(replay.body).toEqual(done.body)
        expect(openai.requests).toHaveLength(1)
        expect(yield* openerRows(alice.id)).toHaveLength(1)
      })
  )

  it.effect("answers that are not kept (a 5xx) release the key: the retry runs", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.setFallback({ kind: "status", status: 500 })
      const payload = { profile: { name: "Sam" }, count: 1 }
      const failed = yield* generateJson(url, withKey(alice.headers, "flaky"), payload)
      expect(failed.status).toBe(503)
      expect(yield* entriesOf(alice.clerkId)).toEqual([])
      openai.setFallback({ kind: "ok", text: "Coffee or tea?\n" })
      const retried = yield* generateJson(url, withKey(alice.headers, "flaky"), payload)
      expect(retried.status).toBe(200)
      expect(retried.headers.get("idempotent-replayed")).toBeNull()
      // That answer is kept: the next retry replays it.
      const replayed = yield* generateJson(url, withKey(alice.headers, "flaky"), payload)
      expect(replayed.headers.get("idempotent-replayed")).toBe("true")
      expect(replayed.body).toEqual(retried.body)
      expect(yield* openerRows(alice.id)).toHaveLength(1)
    })
  )

  it.effect(
    "regenerate retried (SSE, then JSON with its own key): replayed, no second batch, model call or quota unit",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
        const uploadId = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        const id = (created.body as { data: WireSession }).data.id
        const run = yield* readEvents(url, alice.headers, id, "0")
        expect(run.frames.at(-1)?.event).toBe("completed")
        const calls = openai.requests.length

        openai.enqueue({ kind: "ok", text: "Tea at five?\nA walk instead?\nBring the dog" })
        const path = `/api/v1/sessions/${id}/suggestions`
        const payload = { instruction: "shorter" }
        const first = yield* streamed(url, path, withKey(alice.headers, "regen-sse"), payload)
        expect(first.status).toBe(200)
        expect(first.text).toContain("event: final")
        const again = yield* streamed(url, path, withKey(alice.headers, "regen-sse"), payload)
        expect(again.status).toBe(200)
        expect(again.headers.get("content-type")).toMatch(/^text\/event-stream/)
        expect(again.headers.get("idempotent-replayed")).toBe("true")
        expect(again.text).toBe(first.text.replace(/^: keep-alive\n\n/gm, ""))
        expect(openai.requests).toHaveLength(calls + 1)
        expect(yield* usage(alice.id, "regenerations")).toBe(1)

        openai.enqueue({ kind: "ok", text: "Lunch on Sunday?\nA museum?\nYour call" })
        const json = yield* postJson(`${url}${path}`, JSON.stringify(payload), withKey(alice.headers, "regen-json"))
        expect(json.status).toBe(200)
        const jsonAgain = yield* postJson(
          `${url}${path}`,
          JSON.stringify(payload),
          withKey(alice.headers, "regen-json")
        )
        expect(jsonAgain.headers.get("idempotent-replayed")).toBe("true")
        expect(jsonAgain.body).toEqual(json.body)
        expect(openai.requests).toHaveLength(calls + 2)
        expect(yield* usage(alice.id, "regenerations")).toBe(2)
        const batches = yield* sql<{ batch: number }>(
          "SELECT DISTINCT batch FROM suggestions WHERE session_id = $1 ORDER BY batch",
          [id]
        )
        expect(batches.map((row) => row.batch)).toEqual([0, 1, 2])

        // The key is per operation and path: the same key on another session's regeneration is its own.
        const other = yield* postJson(
          `${url}/api/v1/sessions/${MISSING}/suggestions`,
          JSON.stringify(payload),
          withKey(alice.headers, "regen-json")
        )
        expect(other.status).toBe(404)
      })
  )

  it.effect("a stream the client left before its end is not kept: the key is released and the retry runs", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      // The second line is held until the client has gone.
      openai.enqueue({
        kind: "ok",
        text: "Coffee or tea?\nPizza?\n",
        chunks: ["Coffee or tea?\n", "Pizza?\n"],
        chunkDelayMs: 60_000
      })
      const payload = { profile: { name: "Sam" }, count: 2 }
      const left = yield* generateSse(url, withKey(alice.headers, "left"), payload, (event) => event.event === "delta")
      expect(left.events.map((event) => event.event)).toEqual(["delta"])
      yield* Effect.promise(() => openai.nextClientAbort())
      yield* untilNoEntries(alice.clerkId)

      answer("Coffee or tea?\n", "Pizza?\n")
      const retried = yield* generateSse(url, withKey(alice.headers, "left"), payload)
      expect(retried.status).toBe(200)
      expect(retried.headers.get("idempotent-replayed")).toBeNull()
      expect(retried.events.filter((event) => event.event === "done")).toHaveLength(2)
      expect(openai.requests).toHaveLength(2)
      const replayed = yield* generateSse(url, withKey(alice.headers, "left"), payload)
      expect(replayed.headers.get("idempotent-replayed")).toBe("true")
      expect(replayed.events).toEqual(retried.events)
    })
  )

  it.effect(
    "a JSON request the client left before its answer is not kept: the key is released and the retry runs",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const arrived = yield* Deferred.make<void>()
        // Held until the client has gone (the server's interruption aborts the call).
        openai.enqueue({
          kind: "ok",
          text: "Coffee or tea?\n",
          arrived: () => Effect.runSync(Deferred.succeed(arrived, undefined)),
          until: new Promise(() => {})
        })
        const payload = { profile: { name: "Sam" }, count: 1 }
        const client = new AbortController()
        const left = Effect.runPromise(
          Effect.either(
            Effect.tryPromise(() =>
              fetch(`${url}/api/v1/magic-openers/generate`, {
                method: "POST",
                headers: { "content-type": "application/json", ...withKey(alice.headers, "gone") },
                body: JSON.stringify(payload),
                signal: client.signal
              })
            )
          )
        )
        yield* Deferred.await(arrived)
        client.abort()
        expect((yield* Effect.promise(() => left))._tag).toBe("Left")
        yield* Effect.promise(() => openai.nextClientAbort())
        // Before the fix the platform's 499 for a client gone was kept as a 4xx answer: every retry
        // for 24 h got an empty 499 replay.
        yield* untilNoEntries(alice.clerkId)

        answer("Coffee or tea?\n")
        const retried = yield* generateJson(url, withKey(alice.headers, "gone"), payload)
        expect(retried.status).toBe(200)
        expect(retried.headers.get("idempotent-replayed")).toBeNull()
        expect(yield* openerRows(alice.id)).toHaveLength(1)
      })
  )

  it.effect("account erasure drops the user's kept answers", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      for (const user of [alice, bob]) {
        const res = yield* postJson(`${url}/api/v1/uploads`, JSON.stringify(UPLOAD), withKey(user.headers, "mine"))
        expect(res.status).toBe(201)
      }
      expect(yield* entriesOf(alice.clerkId)).toHaveLength(1)
      expect((yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })).status).toBe(204)
      expect(yield* entriesOf(alice.clerkId)).toEqual([])
      expect(yield* entriesOf(bob.clerkId)).toHaveLength(1)
    })
  )

  it.effect(
    "OpenAPI: the four operations document the header, 409 and 422, and Idempotent-Replayed on kept answers",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const spec = (yield* http(`${url}/openapi.json`)).body as {
          paths: Record<string, Record<string, Operation>>
        }
        const operations = [
          ["/api/v1/uploads", "post", "201"],
          ["/api/v1/sessions", "post", "202"],
          ["/api/v1/magic-openers/generate", "post", "200"],
          ["/api/v1/sessions/{sessionId}/suggestions", "post", "200"]
        ] as const
        for (const [path, method, success] of operations) {
          const operation = spec.paths[path]?.[method]
          expect(operation?.parameters).toContainEqual(
            expect.objectContaining({ name: "Idempotency-Key", in: "header", required: false })
          )
          expect(Object.keys(operation?.responses ?? {})).toEqual(
            expect.arrayContaining([success, "409", "422", "503"])
          )
          expect(JSON.stringify(operation?.responses["409"])).toContain("IdempotencyKeyInFlightEnvelope")
          expect(JSON.stringify(operation?.responses["422"])).toContain("IdempotencyKeyReusedEnvelope")
          expect(operation?.responses[success]?.headers?.["Idempotent-Replayed"]).toBeDefined()
          expect(operation?.responses["429"]?.headers?.["Idempotent-Replayed"]).toBeUndefined()
        }
        // Not on the operations that do not take it.
        const list = spec.paths["/api/v1/sessions"]?.["get"]
        expect(JSON.stringify(list?.parameters ?? [])).not.toContain("Idempotency-Key")
      })
  )
})

layer(testServer({ db: TestDb(), config: { CORS_ORIGINS: "https://app.wingmate.test" } }), { timeout: 60_000 })(
  "Idempotency-Key without Redis (this process's memory)",
  (it) => {
    it.effect("replays and refuses the same way; a browser may send the key and read Idempotent-Replayed", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const body = JSON.stringify(UPLOAD)
        const first = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "memory"))
        const again = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "memory"))
        expect(first.status).toBe(201)
        expect(again.headers.get("idempotent-replayed")).toBe("true")
        expect(again.body).toEqual(first.body)
        const other = yield* postJson(`${url}/api/v1/uploads`, "{}", withKey(alice.headers, "memory"))
        expect(other.status).toBe(422)
        expect(yield* uploadCount(alice.id)).toBe(1)

        const preflight = yield* http(`${url}/api/v1/uploads`, {
          method: "OPTIONS",
          headers: {
            origin: "https://app.wingmate.test",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, idempotency-key"
          }
        })
        expect(preflight.status).toBe(204)
        expect(preflight.headers.get("access-control-allow-headers")?.split(",")).toContain("idempotency-key")
        const cors = yield* postJson(`${url}/api/v1/uploads`, body, {
          ...withKey(alice.headers, "memory"),
          origin: "https://app.wingmate.test"
        })
        expect(cors.headers.get("access-control-expose-headers")?.split(",")).toContain("idempotent-replayed")
      })
    )
  }
)

layer(testServer({ db: TestDb(), redis: Redis.layer, config: { REDIS_URL: "redis://127.0.0.1:1" } }), {
  timeout: 60_000
})("Idempotency-Key with Redis unreachable", (it) => {
  it.effect(
    "a request with a key: 503 SERVICE_UNAVAILABLE with Retry-After, nothing created; without one it runs",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const body = JSON.stringify(UPLOAD)
        const refused = yield* postJson(`${url}/api/v1/uploads`, body, withKey(alice.headers, "down"))
        expect(refused.status).toBe(503)
        expect(refused.body).toEqual(
          failure("SERVICE_UNAVAILABLE", "Idempotency keys cannot be checked right now; retry shortly")
        )
        expect(refused.headers.get("retry-after")).toBe("1")
        expect(yield* uploadCount(alice.id)).toBe(0)
        expect((yield* postJson(`${url}/api/v1/uploads`, body, alice.headers)).status).toBe(201)
      })
  )
})
