/**
 * Requests let in for an account that is erased before their write: they end as the account's
 * requests are now refused, 401 `UNAUTHORIZED` with `details.reason: "account-erased"` (never a
 * 500), and nothing of the user is left behind. Each race is made deterministic: another api
 * instance erased the account while this one's cache still maps the token; or the erasure runs on
 * this instance while the request's write waits on a lock the test holds.
 *
 * The daily allowance: its row (`usage_counters`) names a user who is gone, and its foreign key
 * refuses it. The test holds `usage_counters`, and lets go once the erasure waits for it too.
 *
 * A session's or a suggestion's row: read, then deleted with the account before the request's
 * write (a regeneration's batch number, a transcript's fixes, feedback). The test holds the row: the erasure's delete
 * waits first, the request's update behind it.
 *
 * A request that finds nothing (its match, session or opener gone with the account, or never
 * there), after another instance erased the account: `withUser` reads the tombstone then.
 *
 * A session's create: its upload read after the tombstone (the erasure waiting on the upload the
 * test holds), or checked before another instance's erasure commits and gone when it is taken.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { beforeAll } from "vitest"
import { CloseCode } from "../../../src/domain/realtime.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { awaitLockWaits, holdingLocks, sql, TestDb } from "../../support/database.ts"
import { http, postJson, type HttpResult } from "../../support/http.ts"
import { rpcRequest, rpcStreamed } from "../../support/rpc-socket.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import {
  ERASED,
  eraseAccount,
  erasedRpcExit,
  eraseElsewhere,
  erasingElsewhere,
  provisionUser,
  type TestUser
} from "../../support/users.ts"
import { connectAs } from "../../support/ws.ts"
import { newMatch } from "../openers/support.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "../sessions/support.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const GENERATE = { profile: { name: "Sam", bio: "Climber" }, count: 1 }

const generateJson = (url: string, user: TestUser) =>
  postJson(`${url}/api/v1/magic-openers/generate`, JSON.stringify(GENERATE), user.headers)

const generateSse = (url: string, user: TestUser) =>
  http(`${url}/api/v1/magic-openers/generate`, {
    method: "POST",
    headers: { ...user.headers, "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(GENERATE)
  })

const regenerate = (url: string, user: TestUser, sessionId: string) =>
  postJson(`${url}/api/v1/sessions/${sessionId}/suggestions`, JSON.stringify({}), user.headers)

/** Every row that names the user: none may be left once the request was refused. */
const rowsOf = (userId: string) =>
  sql(
    `SELECT 'users' AS t, count(*)::int AS n FROM users WHERE id = $1
     UNION ALL SELECT 'usage_counters', count(*)::int FROM usage_counters WHERE user_id = $1
     UNION ALL SELECT 'magic_openers', count(*)::int FROM magic_openers WHERE user_id = $1
     UNION ALL SELECT 'sessions', count(*)::int FROM sessions WHERE user_id = $1
     UNION ALL SELECT 'uploads', count(*)::int FROM uploads WHERE user_id = $1`,
    [userId]
  )

const expectRefusedAsErased = (res: HttpResult, userId: string) =>
  Effect.gen(function* () {
    expect(res.status).toBe(401)
    expect(res.body).toEqual({ success: false, error: ERASED })
    expect((yield* rowsOf(userId)).filter((row) => row["n"] !== 0)).toEqual([])
  })

/** A session of `user`'s, completed (the local OCR and provider). */
const completedSession = (url: string, user: TestUser) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, user.headers, screenshot)
    const created = yield* createSession(url, user.headers, { uploadIds: [uploadId] })
    expect(created.status).toBe(202)
    const done = yield* awaitFinished(url, user.headers, (created.body as { data: WireSession }).data.id)
    expect(done.status).toBe("completed")
    return done
  })

/**
 * `request` of `user`'s started while the test holds `usage_counters`, so that its allowance
 * waits; the account erased meanwhile on this instance (DELETE /users/me from another device),
 * whose cascade then waits on the same table; then both let go: the erasure commits while the
 * allowance's foreign key check waits for it. The request's answer.
 */
const erasedWhileTakingAllowance = <A>(url: string, user: TestUser, request: Effect.Effect<A>) =>
  Effect.gen(function* () {
    const lock = yield* holdingLocks("LOCK TABLE usage_counters IN SHARE MODE")
    const requesting = yield* Effect.fork(request)
    yield* awaitLockWaits(1)
    const erasing = yield* Effect.fork(eraseAccount(url, user))
    yield* awaitLockWaits(2)
    yield* lock.release
    yield* Fiber.join(erasing)
    return yield* Fiber.join(requesting)
  })

/**
 * `request` of `user`'s whose row (`id` in `table`) goes with the account between its read and
 * its write: the test holds the row; the erasure (DELETE /users/me from another device) waits for
 * it first, then the request's write behind it; the row let go, the erasure deletes it and the
 * write finds nothing. The request's answer.
 */
const erasedBeforeItsWrite = <A>(
  url: string,
  user: TestUser,
  table: "sessions" | "suggestions",
  id: string,
  request: Effect.Effect<A>
) =>
  Effect.gen(function* () {
    const lock = yield* holdingLocks(`SELECT id FROM ${table} WHERE id = $1 FOR UPDATE`, [id])
    const erasing = yield* Effect.fork(eraseAccount(url, user))
    yield* awaitLockWaits(1)
    const requesting = yield* Effect.fork(request)
    yield* awaitLockWaits(2)
    yield* lock.release
    yield* Fiber.join(erasing)
    return yield* Fiber.join(requesting)
  })

layer(testServer({ db: TestDb(), consumer: true, config: { AI_DAILY_SPEND_CAP_MICROS: "0" } }), {
  timeout: 120_000
})("an account erased after its request was let in", (it) => {
  it.effect("another instance erased it: REST generate (JSON, SSE) answers 401 account-erased, not a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      for (const generate of [generateJson, generateSse]) {
        const user = yield* provisionUser(url, "elsewhere")
        yield* eraseElsewhere(user)
        // Before: 500 INTERNAL_ERROR (the counter's foreign key of the user).
        yield* expectRefusedAsErased(yield* generate(url, user), user.id)
      }
    })
  )

  it.effect("another instance erased it: POST /sessions and RPC sessions.create answer 401 account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "elsewhere")
      const uploadId = yield* uploadPng(url, user.headers, screenshot)
      yield* eraseElsewhere(user)
      // Before: 404 NOT_FOUND "Upload not found" (the upload went with the account).
      yield* expectRefusedAsErased(yield* createSession(url, user.headers, { uploadIds: [uploadId] }), user.id)
      const lines = yield* rpcStreamed(
        url,
        rpcRequest("1", "sessions.create", { uploadIds: [uploadId] }, user.token),
        async () => {}
      )
      // Before: Failure Fail NotFound "Upload not found".
      expect(lines.at(-1)).toEqual(erasedRpcExit("1"))
    })
  )

  it.effect(
    "another instance erased it: what went with it (or was never there) answers 401 account-erased, not 404",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const user = yield* provisionUser(url, "elsewhere")
        const bob = yield* provisionUser(url, "bob")
        const match = yield* newMatch(url, user.headers, { name: "Sam" })
        const missing = "cmissing0000000000000000"
        yield* eraseElsewhere(user)
        const requests = (headers: Record<string, string>) => [
          http(`${url}/api/v1/matches/${match.id}`, { headers }),
          http(`${url}/api/v1/matches/${match.id}`, { method: "DELETE", headers }),
          http(`${url}/api/v1/sessions/${missing}`, { headers }),
          http(`${url}/api/v1/sessions/${missing}/cancel`, { method: "POST", headers }),
          http(`${url}/api/v1/magic-openers/${missing}/like`, { method: "POST", headers })
        ]
        // Before: 404 NOT_FOUND for each.
        for (const request of requests(user.headers)) yield* expectRefusedAsErased(yield* request, user.id)
        for (const [id, tag, payload] of [
          ["1", "matches.get", { matchId: match.id }],
          ["2", "sessions.get", { sessionId: missing }],
          ["3", "openers.like", { openerId: missing }]
        ] as const) {
          const lines = yield* rpcStreamed(url, rpcRequest(id, tag, payload, user.token), async () => {})
          expect(lines.at(-1)).toEqual(erasedRpcExit(id))
        }
        // An account that is not erased still gets its 404s.
        for (const request of requests(bob.headers)) expect((yield* request).status).toBe(404)
      })
  )

  it.scoped("erased on this instance while a session's create is let in: 401 account-erased, not 404", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const uploadId = yield* uploadPng(url, user.headers, screenshot)
      // The erasure runs (its tombstone written) and waits to delete the upload, which the test holds.
      const lock = yield* holdingLocks("SELECT id FROM uploads WHERE id = $1 FOR UPDATE", [uploadId])
      const erasing = yield* Effect.fork(eraseAccount(url, user))
      yield* awaitLockWaits(1)
      const res = yield* createSession(url, user.headers, { uploadIds: [uploadId] })
      yield* lock.release
      yield* Fiber.join(erasing)
      // Before: 404 NOT_FOUND "Upload not found".
      yield* expectRefusedAsErased(res, user.id)
    })
  )

  it.scoped("erased on another instance while a session's create waits to take its upload: 401, not 409", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const uploadId = yield* uploadPng(url, user.headers, screenshot)
      // Verified now, so that the create's checks only read it.
      expect((yield* http(`${url}/api/v1/uploads/${uploadId}`, { headers: user.headers })).status).toBe(200)
      // The other instance's erasure deleted the upload (with the user) but has not committed: the
      // create's checks still see the upload, unused and no tombstone; its taking waits for the erasure.
      const erasure = yield* erasingElsewhere(user)
      const creating = yield* Effect.fork(createSession(url, user.headers, { uploadIds: [uploadId] }))
      yield* awaitLockWaits(1)
      yield* erasure.commit
      // Before: 409 UPLOAD_ALREADY_USED (the upload it could not take had gone with the account).
      yield* expectRefusedAsErased(yield* Fiber.join(creating), user.id)
    })
  )

  it.scoped(
    "erased on this instance while a WebSocket generation's allowance is taken: opener.error account-erased",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const user = yield* provisionUser(url, "racing")
        const socket = yield* connectAs(url, user.token)
        const end = yield* erasedWhileTakingAllowance(
          url,
          user,
          Effect.zipRight(
            socket.send({ type: "opener.generate", requestId: "g1", ...GENERATE }),
            socket.next((frame) => frame.type === "opener.error" || frame.type === "opener.done")
          )
        )
        // Before: opener.error INTERNAL_ERROR.
        expect(end).toEqual({ type: "opener.error", requestId: "g1", ...ERASED })
        expect((yield* socket.closed()).code).toBe(CloseCode.Unauthenticated)
        expect((yield* rowsOf(user.id)).filter((row) => row["n"] !== 0)).toEqual([])
      })
  )

  it.effect("another instance erased it: RPC openers.generate fails Unauthorized account-erased", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "elsewhere")
      yield* eraseElsewhere(user)
      const lines = yield* rpcStreamed(url, rpcRequest("1", "openers.generate", GENERATE, user.token), async () => {})
      // Before: Failure Die InternalError.
      expect(lines.at(-1)).toEqual(erasedRpcExit("1"))
      expect((yield* rowsOf(user.id)).filter((row) => row["n"] !== 0)).toEqual([])
    })
  )

  it.scoped("erased on this instance while a generation's allowance is taken: 401 account-erased, not a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const res = yield* erasedWhileTakingAllowance(url, user, generateJson(url, user))
      yield* expectRefusedAsErased(res, user.id)
    })
  )

  it.scoped("erased on this instance while a regeneration's allowance is taken: 401 account-erased, not a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const session = yield* completedSession(url, user)
      const res = yield* erasedWhileTakingAllowance(url, user, regenerate(url, user, session.id))
      yield* expectRefusedAsErased(res, user.id)
    })
  )

  it.scoped("erased on this instance between a suggestion's read and its feedback: 401 account-erased, not a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const session = yield* completedSession(url, user)
      const suggestionId = session.suggestions[0]?.id ?? ""
      const liking = yield* erasedBeforeItsWrite(
        url,
        user,
        "suggestions",
        suggestionId,
        http(`${url}/api/v1/sessions/${session.id}/suggestions/${suggestionId}/like`, {
          method: "POST",
          headers: user.headers
        })
      )
      // Before: 500 INTERNAL_ERROR (the update found no row).
      yield* expectRefusedAsErased(liking, user.id)
    })
  )

  it.scoped("erased on this instance between a regeneration's read of its session and its batch number: 401", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const session = yield* completedSession(url, user)
      const regenerating = yield* erasedBeforeItsWrite(
        url,
        user,
        "sessions",
        session.id,
        regenerate(url, user, session.id)
      )
      // Before: 500 INTERNAL_ERROR (the batch number's update found no row).
      yield* expectRefusedAsErased(regenerating, user.id)
    })
  )

  it.scoped("erased on this instance between a transcript fix's read of its session and its write: 401", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "racing")
      const session = yield* completedSession(url, user)
      const fixing = yield* erasedBeforeItsWrite(
        url,
        user,
        "sessions",
        session.id,
        http(`${url}/api/v1/sessions/${session.id}/transcript`, {
          method: "PATCH",
          headers: { ...user.headers, "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ position: 0, text: "Fixed" }] })
        })
      )
      // Before: 409 CONFLICT "The session changed meanwhile; try again", which no retry would change.
      yield* expectRefusedAsErased(fixing, user.id)
    })
  )
})
