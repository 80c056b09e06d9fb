/**
 * Daily limits of what costs model calls, under concurrency: sessions created
 * (`SESSIONS_DAILY_LIMIT`) and suggestion regenerations (`REGENERATIONS_DAILY_LIMIT`) per user
 * and UTC day; requests at once never take more than the limit (429 QUOTA_EXCEEDED with
 * Retry-After). And taking uploads is one transaction with creating the session: a session
 * refused or failing after its uploads were checked leaves them usable for the retry.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { beforeAll } from "vitest"
import { Db, DbError, type TxClient } from "../../../src/core/db/db.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { failure, http, type HttpResult, postJson } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { twoUsers } from "../../support/users.ts"
import { createSession, sessionRun, uploadPng } from "./support.ts"

let png: Buffer
let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  png = await tinyImage("png")
  screenshot = await chatScreenshotPng()
})

const statusesOf = (results: ReadonlyArray<HttpResult>) =>
  results.reduce<Record<number, number>>(
    (counts, res) => ({ ...counts, [res.status]: (counts[res.status] ?? 0) + 1 }),
    {}
  )

const uploadStatus = (id: string) =>
  Effect.map(sql<{ status: string }>("SELECT status::text AS status FROM uploads WHERE id = $1", [id]), (rows) =>
    rows.map((row) => row.status)
  )

const sessionCount = (userId: string) =>
  Effect.map(
    sql<{ n: number }>("SELECT count(*)::int AS n FROM sessions WHERE user_id = $1", [userId]),
    (rows) => rows[0]?.n
  )

/** `Retry-After` agrees with `details.retryAfterSeconds`. */
const expectQuotaExceeded = (res: HttpResult, message: string, limit: number) => {
  expect(res.status).toBe(429)
  expect(res.body).toEqual(failure("QUOTA_EXCEEDED", message, { limit, retryAfterSeconds: expect.any(Number) }))
  const seconds = (res.body as { error: { details: { retryAfterSeconds: number } } }).error.details.retryAfterSeconds
  expect(res.headers.get("retry-after")).toBe(String(seconds))
  expect(seconds).toBeGreaterThan(0)
  expect(seconds).toBeLessThanOrEqual(86_400)
}

layer(testServer({ db: TestDb(), config: { SESSIONS_DAILY_LIMIT: "3" } }), { timeout: 60_000 })(
  "sessions: daily limit",
  (it) => {
    it.effect("8 sessions at once: exactly 3 are created, 5 get 429 and their uploads stay usable", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const uploads = yield* Effect.forEach(Array.from({ length: 8 }), () => uploadPng(url, alice.headers, png))
        const results = yield* Effect.all(
          uploads.map((uploadId) => createSession(url, alice.headers, { uploadIds: [uploadId] })),
          { concurrency: "unbounded" }
        )
        expect(statusesOf(results)).toEqual({ 202: 3, 429: 5 })
        for (const res of results.filter((r) => r.status === 429))
          expectQuotaExceeded(res, "Daily limit of 3 sessions reached", 3)
        expect(yield* sessionCount(alice.id)).toBe(3)
        const statuses = yield* Effect.forEach(uploads, uploadStatus)
        expect(statuses.flat().sort()).toEqual([
          "used",
          "used",
          "used",
          "verified",
          "verified",
          "verified",
          "verified",
          "verified"
        ])

        // The limit is per user.
        const bobs = yield* uploadPng(url, bob.headers, png)
        expect((yield* createSession(url, bob.headers, { uploadIds: [bobs] })).status).toBe(202)
      })
    )

    it.effect("two sessions racing for one upload: one is created, the other gets 409, nothing is orphaned", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, png)
        const results = yield* Effect.all(
          [
            createSession(url, alice.headers, { uploadIds: [uploadId] }),
            createSession(url, alice.headers, { uploadIds: [uploadId] })
          ],
          { concurrency: "unbounded" }
        )
        expect(statusesOf(results)).toEqual({ 202: 1, 409: 1 })
        expect(results.find((res) => res.status === 409)?.body).toMatchObject({
          success: false,
          error: { code: "UPLOAD_ALREADY_USED", details: { uploadId } }
        })
        const images = yield* sql("SELECT session_id FROM session_images WHERE upload_id = $1", [uploadId])
        expect(images).toHaveLength(1)
        expect(yield* sessionCount(alice.id)).toBe(1)
        // The loser took nothing of the day's allowance.
        expect(
          yield* sql("SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'sessions'", [alice.id])
        ).toEqual([{ used: 1 }])
      })
    )
  }
)

/**
 * Fails the next `sessions.create`: in a transaction after its work was done (the row written,
 * the uploads taken); as one raw statement (`Db.sql`), the statement fails as a whole (PostgreSQL
 * keeps nothing of a failed statement).
 */
const injected = { failures: 0 }
const FailingDb = Layer.effect(
  Db,
  Effect.map(Db, (db) => {
    const boom = (operation: string) => new DbError({ operation, cause: new Error("injected failure") })
    const armed = (operation: string) => operation === "sessions.create" && injected.failures > 0
    return Db.of({
      ...db,
      query: (operation, run) =>
        armed(operation)
          ? Effect.suspend(() => {
              injected.failures--
              return Effect.fail(boom(operation))
            })
          : db.query(operation, run),
      sql: (operation, statement) =>
        armed(operation)
          ? Effect.suspend(() => {
              injected.failures--
              return Effect.fail(boom(operation))
            })
          : db.sql(operation, statement),
      transaction: <A, E, R>(operation: string, body: (tx: TxClient) => Effect.Effect<A, E, R>) =>
        armed(operation)
          ? Effect.suspend(() => {
              injected.failures--
              return db.transaction(operation, (tx) => Effect.zipRight(body(tx), Effect.fail(boom(operation))))
            })
          : db.transaction(operation, body)
    })
  })
).pipe(Layer.provide(TestDb()))

layer(testServer({ db: FailingDb }), { timeout: 60_000 })("sessions: a refused session keeps its uploads", (it) => {
  it.effect("a database failure while creating the session: 500, the upload is not consumed, the retry succeeds", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const first = yield* uploadPng(url, alice.headers, png)
      const second = yield* uploadPng(url, alice.headers, png)
      injected.failures = 1
      const failed = yield* createSession(url, alice.headers, { uploadIds: [first, second] })
      expect(failed.status).toBe(500)
      expect(injected.failures).toBe(0)
      expect(yield* uploadStatus(first)).toEqual(["verified"])
      expect(yield* uploadStatus(second)).toEqual(["verified"])
      expect(yield* sessionCount(alice.id)).toBe(0)

      const retried = yield* createSession(url, alice.headers, { uploadIds: [first, second] })
      expect(retried.status).toBe(202)
      expect(yield* uploadStatus(first)).toEqual(["used"])
      expect(yield* sessionCount(alice.id)).toBe(1)
    })
  )

  it.effect("a context PostgreSQL would refuse (a NUL byte): 400, the upload is not consumed, the retry succeeds", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const uploadId = yield* uploadPng(url, alice.headers, png)
      const refused = yield* createSession(url, alice.headers, { uploadIds: [uploadId], context: "before\u0000after" })
      // The boundary refuses it before any work (it was a 500 from the database after the upload was taken).
      expect(refused.status).toBe(400)
      expect(refused.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
      expect(yield* uploadStatus(uploadId)).toEqual(["pending"])
      const retried = yield* createSession(url, alice.headers, { uploadIds: [uploadId], context: "before after" })
      expect(retried.status).toBe(202)
      expect(yield* sessionCount(alice.id)).toBe(1)
    })
  )
})

layer(testServer({ db: TestDb(), consumer: true, config: { REGENERATIONS_DAILY_LIMIT: "2" } }), { timeout: 120_000 })(
  "sessions: daily limit of regenerations",
  (it) => {
    it.effect("6 regenerations at once: exactly 2 get a batch, 4 get 429", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        // The events stream ends with the session's terminal event.
        const { id, events } = yield* sessionRun(url, alice.headers, screenshot)
        expect(events.frames.at(-1)?.event).toBe("completed")

        const results = yield* Effect.all(
          Array.from({ length: 6 }, () => postJson(`${url}/api/v1/sessions/${id}/suggestions`, "{}", alice.headers)),
          { concurrency: "unbounded" }
        )
        expect(statusesOf(results)).toEqual({ 200: 2, 429: 4 })
        for (const res of results.filter((r) => r.status === 429))
          expectQuotaExceeded(res, "Daily limit of 2 suggestion regenerations reached", 2)
        const batches = results.flatMap((res) =>
          res.status === 200 ? [(res.body as { data: { batch: number } }).data.batch] : []
        )
        expect(batches.sort()).toEqual([1, 2])
        const session = yield* http(`${url}/api/v1/sessions/${id}`, { headers: alice.headers })
        const saved = (session.body as { data: { suggestions: ReadonlyArray<{ batch: number }> } }).data.suggestions
        expect(new Set(saved.map((s) => s.batch))).toEqual(new Set([0, 1, 2]))
      })
    )
  }
)
