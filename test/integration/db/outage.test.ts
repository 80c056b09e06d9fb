/**
 * The app while its database is away (its host gone: every connection cut, new ones refused), on a
 * real PostgreSQL behind a cuttable TCP proxy, where REST answers 503: over the WebSocket an opener
 * generation answers `opener.error` SERVICE_UNAVAILABLE, never INTERNAL_ERROR, and a followed
 * session whose stream fails says which session it was (a client follows several at once); the
 * local storage's upload PUT answers 503 too, and the same URL takes the bytes once the database is
 * back. Then everything works again without a restart.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { Db } from "../../../src/core/db/db.ts"
import { Redis } from "../../../src/core/redis.ts"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { type Behavior, startFakeOpenAI } from "../../fakes/ai/index.ts"
import { testDatabaseUrl } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { startCuttableProxy } from "../../support/tcp-proxy.ts"
import { twoUsers } from "../../support/users.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"
import { connectAs, ofType } from "../../support/ws.ts"
import { awaitFinished, FAKE_SUGGESTIONS, FAKE_VISION, newSession } from "../sessions/support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

const database = new URL(testDatabaseUrl())
const proxy = await startCuttableProxy({ host: database.hostname, port: Number(database.port || 5432) })
afterAll(() => proxy.close())
const proxied = new URL(database)
proxied.hostname = "127.0.0.1"
proxied.port = String(proxy.port)

/** Cuts the database for the rest of the test (or until `proxy.restore()`); restored at the end whatever happens. */
const cutDatabase = Effect.acquireRelease(
  Effect.promise(() => proxy.cut()),
  () => Effect.promise(() => proxy.restore())
)

/**
 * POSTs for an SSE stream (200), cuts the database at its first `delta` and reads the stream to its
 * end: its events. The database is restored whatever happens.
 */
const postStreamCutAtFirstDelta = (url: string, headers: Record<string, string>, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(body)
    })
    expect(response.status).toBe(200)
    if (response.body === null) throw new Error("no body")
    const decoder = new TextDecoder()
    let text = ""
    let cut = false
    for await (const chunk of response.body) {
      text += decoder.decode(chunk, { stream: true })
      if (!cut && /^event: delta$/m.test(text)) {
        cut = true
        await proxy.cut()
      }
    }
    return [...text.matchAll(/^event: (\w+)\ndata: (.*)$/gm)].map((match) => ({
      event: match[1],
      data: JSON.parse(match[2] ?? "null") as unknown
    }))
  }).pipe(Effect.ensuring(Effect.promise(() => proxy.restore())))

/** Two openers whose first line completes (and is saved) only with the second chunk, after the cut. */
const OPENERS_SAVED_AFTER_THE_CUT: Behavior = {
  kind: "ok",
  text: "Hi Sam?\nTacos or sushi?\n",
  chunks: ["Hi ", "Sam?\nTacos or sushi?\n"],
  chunkDelayMs: 500,
  usage: { input: 100, output: 10 }
}

let screenshot: Buffer
beforeAll(async () => {
  screenshot = await chatScreenshotPng()
})

/** A server whose database is behind the proxy, on a queue of its own; `consumer`: with a worker. */
const serverBehindProxy = (consumer: boolean) =>
  testServer({
    db: Db.postgres({ url: Redacted.make(proxied.toString()), poolMax: 2, migrate: false }),
    redis: Redis.layer,
    consumer,
    config: {
      REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
      QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`,
      OPENAI_API_KEY: "test",
      OPENAI_BASE_URL: openai.url,
      AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
      AI_BREAKER_FAILURES: "1000",
      AI_DAILY_SPEND_CAP_MICROS: "0",
      RATE_LIMIT_ENABLED: "false",
      SESSION_EVENTS_DB_CHECK_MS: "200"
    }
  })

layer(serverBehindProxy(false), { timeout: 60_000 })("database outage", (it) => {
  it.scoped("an opener generation answers SERVICE_UNAVAILABLE while the database is away, then works again", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const socket = yield* connectAs(url, alice.token)

      yield* cutDatabase
      openai.enqueue({ kind: "ok", text: "Hi Sam?\nTacos or sushi?\n", usage: { input: 100, output: 10 } })
      yield* socket.send({ type: "opener.generate", requestId: "down", profile: { name: "Sam" }, count: 2 })
      expect(yield* socket.next(ofType("opener.error"))).toEqual({
        type: "opener.error",
        requestId: "down",
        code: "SERVICE_UNAVAILABLE",
        message: "The database is unavailable; try again shortly"
      })

      yield* Effect.promise(() => proxy.restore())
      openai.reset()
      openai.enqueue({ kind: "ok", text: "Hi Sam?\nTacos or sushi?\n", usage: { input: 100, output: 10 } })
      yield* socket.send({ type: "opener.generate", requestId: "up", profile: { name: "Sam" }, count: 2 })
      expect(yield* socket.next(ofType("opener.done"))).toMatchObject({ type: "opener.done", requestId: "up" })
    })
  )

  it.scoped("an opener generation over /ws whose database goes away mid-stream ends with opener.error", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const socket = yield* connectAs(url, alice.token)
      openai.enqueue(OPENERS_SAVED_AFTER_THE_CUT)
      yield* socket.send({ type: "opener.generate", requestId: "cut", profile: { name: "Sam" }, count: 2 })
      yield* socket.next(ofType("opener.delta"))
      yield* cutDatabase
      // Before: saving the line died, and the generation's fiber ended without a frame (the app waited).
      expect(yield* socket.next((frame) => frame["requestId"] === "cut" && frame.type !== "opener.delta")).toEqual({
        type: "opener.error",
        requestId: "cut",
        code: "SERVICE_UNAVAILABLE",
        message: "The database is unavailable; try again shortly"
      })
    })
  )

  it.scoped("a followed session whose stream fails: the error frame names the session", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const session = yield* newSession(url, alice.headers, screenshot)
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "subscribe", sessionId: session.id })
      yield* socket.next(ofType("subscribed"))

      // No worker here: the session stays queued, and the stream's database check fails.
      yield* cutDatabase
      const error = yield* socket.next(ofType("error"))
      yield* Effect.promise(() => proxy.restore())
      expect(error).toEqual({
        type: "error",
        code: "SERVICE_UNAVAILABLE",
        message: "Temporarily unavailable; try again shortly",
        details: { sessionId: session.id }
      })
    })
  )
  it.scoped("the local storage's upload PUT answers 503 while the database is away; the URL works after", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const ticket = yield* ticketFor(url, alice.headers, screenshot)
      yield* cutDatabase
      const refused = yield* sendBytes(ticket, screenshot)
      expect(refused.status).toBe(503)
      expect(refused.body).toEqual({
        success: false,
        error: { code: "SERVICE_UNAVAILABLE", message: "The database is unavailable; try again shortly" }
      })
      yield* Effect.promise(() => proxy.restore())
      expect((yield* sendBytes(ticket, screenshot)).status).toBe(200)
    })
  )
  it.scoped("an RPC call while the database is away fails ServiceUnavailable, never a defect; it works after", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const call = Effect.promise(async () => {
        const response = await fetch(`${url}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/ndjson" },
          body:
            JSON.stringify({
              _tag: "Request",
              id: "1",
              tag: "openers.list",
              payload: {},
              headers: [["authorization", `Bearer ${alice.token}`]]
            }) + "\n"
        })
        return { status: response.status, text: await response.text() }
      })
      yield* cutDatabase
      const down = yield* call
      yield* Effect.promise(() => proxy.restore())
      expect(down.status).toBe(200)
      // Before: Die { name: "DbError", message: "{ operation: openers.list, cause: Error: Connection terminated … }" }.
      expect(JSON.parse(down.text)).toEqual({
        _tag: "Exit",
        requestId: "1",
        exit: {
          _tag: "Failure",
          cause: {
            _tag: "Fail",
            error: { _tag: "ServiceUnavailable", message: "The database is unavailable; try again shortly" }
          }
        }
      })
      const up = yield* call
      expect(JSON.parse(up.text)).toMatchObject({ _tag: "Exit", exit: { _tag: "Success", value: { items: [] } } })
    })
  )
  it.scoped("an openers SSE stream whose database goes away mid-stream ends with failed SERVICE_UNAVAILABLE", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(OPENERS_SAVED_AFTER_THE_CUT)
      const events = yield* postStreamCutAtFirstDelta(`${url}/api/v1/magic-openers/generate`, alice.headers, {
        profile: { name: "Sam" },
        count: 2
      })
      expect(events.at(-1)).toEqual({
        event: "failed",
        data: { code: "SERVICE_UNAVAILABLE", message: "The database is unavailable; try again shortly", openers: [] }
      })
    })
  )
})

layer(serverBehindProxy(true), { timeout: 60_000 })("database outage, with a worker", (it) => {
  it.scoped("a regeneration SSE stream whose database goes away mid-stream ends with failed SERVICE_UNAVAILABLE", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(FAKE_VISION)
      openai.enqueue(FAKE_SUGGESTIONS)
      const session = yield* newSession(url, alice.headers, screenshot)
      expect((yield* awaitFinished(url, alice.headers, session.id)).status).toBe("completed")

      openai.enqueue({
        kind: "ok",
        text: "Coffee sounds great\nA walk by the river?\nSurprise me\n",
        chunks: ["Coffee ", "sounds great\nA walk by the river?\nSurprise me\n"],
        chunkDelayMs: 500
      })
      const events = yield* postStreamCutAtFirstDelta(
        `${url}/api/v1/sessions/${session.id}/suggestions`,
        alice.headers,
        { tone: "witty" }
      )
      expect(events.at(-1)).toEqual({
        event: "failed",
        data: {
          code: "SERVICE_UNAVAILABLE",
          message: "The database is unavailable; try again shortly",
          batch: 1,
          suggestions: []
        }
      })
    })
  )
})
