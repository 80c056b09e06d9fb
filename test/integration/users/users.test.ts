/** `/api/v1/users/me` against the real PostgreSQL: provisioning, profile, erasure. */
import { describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import { Erasure, type ErasedUser } from "../../../src/core/erasure.ts"
import { clerkIdHash } from "../../../src/modules/users/users.repo.ts"
import { bearer, newClerkId, tokenFor } from "../../support/auth.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http, issuePaths } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { createUpload } from "../../support/uploads.ts"
import { eraseElsewhere, provisionUser, twoUsers } from "../../support/users.ts"

/** A module's erasure step, as later modules register theirs: it records whom it erased. */
const erasedByProbe: Array<ErasedUser> = []
let probeFailures = 0
/** While set, the step waits for it (a slow store) after saying it started. */
let probeHold: { readonly started: Deferred.Deferred<void>; readonly release: Deferred.Deferred<void> } | undefined
const ProbeErasureStep = Erasure.register({
  name: "probe",
  erase: (user) =>
    Effect.gen(function* () {
      const hold = probeHold
      if (hold !== undefined) {
        yield* Deferred.succeed(hold.started, undefined)
        yield* Deferred.await(hold.release)
      }
      if (probeFailures > 0) {
        probeFailures--
        return yield* Effect.fail(new Error("storage unreachable"))
      }
      erasedByProbe.push(user)
    })
})

const patchMe = (url: string, headers: Record<string, string>, body: unknown) =>
  http(`${url}/api/v1/users/me`, {
    method: "PATCH",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

const userRows = (clerkId: string) => sql("SELECT * FROM users WHERE clerk_id = $1", [clerkId])

layer(testServer({ db: TestDb(), routes: ProbeErasureStep }), { timeout: 60_000 })("users", (it) => {
  it.effect("a first request provisions the user from the token's claims", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const clerkId = newClerkId("jit")
      const token = tokenFor({ clerkId, email: `${clerkId}@test.dev`, firstName: "Jo", lastName: "Doe" })
      const res = yield* http(`${url}/api/v1/users/me`, { headers: bearer(token) })
      expect(res.status).toBe(200)
      expect(res.body).toEqual({
        success: true,
        data: {
          id: expect.any(String),
          email: `${clerkId}@test.dev`,
          firstName: "Jo",
          lastName: "Doe",
          imageUrl: null,
          preferredLanguage: null,
          defaultTone: null,
          createdAt: expect.any(String),
          updatedAt: expect.any(String)
        }
      })
      const rows = yield* userRows(clerkId)
      expect(rows).toHaveLength(1)
      expect(rows[0]?.["id"]).toBe((res.body as { data: { id: string } }).data.id)
    })
  )

  it.effect("odd claims in a valid token (NUL, a lone surrogate) are stored cleaned, not a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const clerkId = newClerkId("oddjit")
      const token = tokenFor({ clerkId, firstName: "Jo\u0000", lastName: "D\udc00oe" })
      const res = yield* http(`${url}/api/v1/users/me`, { headers: bearer(token) })
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ success: true, data: { firstName: "Jo", lastName: "D\uFFFDoe" } })
    })
  )

  it.effect("concurrent first requests create exactly one row", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const clerkId = newClerkId("burst")
      const headers = bearer(tokenFor({ clerkId, email: `${clerkId}@test.dev` }))
      const answers = yield* Effect.all(
        Array.from({ length: 25 }, () => http(`${url}/api/v1/users/me`, { headers })),
        { concurrency: "unbounded" }
      )
      expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 25 }, () => 200))
      const ids = new Set(answers.map((answer) => (answer.body as { data: { id: string } }).data.id))
      expect(ids.size).toBe(1)
      expect(yield* userRows(clerkId)).toHaveLength(1)
    })
  )

  it.effect("an email already held by another account does not block provisioning", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const email = `shared-${Date.now()}@test.dev`
      const first = yield* http(`${url}/api/v1/users/me`, {
        headers: bearer(tokenFor({ clerkId: newClerkId(), email }))
      })
      const secondId = newClerkId()
      const second = yield* http(`${url}/api/v1/users/me`, {
        headers: bearer(tokenFor({ clerkId: secondId, email }))
      })
      expect(first.status).toBe(200)
      expect(second.status).toBe(200)
      expect(second.body).toMatchObject({ data: { email: null } })
      expect(yield* userRows(secondId)).toHaveLength(1)
    })
  )

  describe("PATCH /users/me", () => {
    it.effect("updates whitelisted fields; null clears; the row says so", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* patchMe(url, alice.headers, {
          firstName: "  Alice ",
          lastName: "Liddell",
          preferredLanguage: "fr-CA",
          defaultTone: "witty"
        })
        expect(res.status).toBe(200)
        expect(res.body).toMatchObject({
          success: true,
          data: { firstName: "Alice", lastName: "Liddell", preferredLanguage: "fr-CA", defaultTone: "witty" }
        })
        const cleared = yield* patchMe(url, alice.headers, { lastName: null })
        expect(cleared.body).toMatchObject({ data: { firstName: "Alice", lastName: null } })
        const [row] = yield* userRows(alice.clerkId)
        expect(row).toMatchObject({
          first_name: "Alice",
          last_name: null,
          preferred_language: "fr-CA",
          default_tone: "witty"
        })
      })
    )

    it.effect("unknown or protected fields are rejected with 400 and nothing is written", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const [before] = yield* userRows(alice.clerkId)
        const res = yield* patchMe(url, alice.headers, {
          firstName: "Mallory",
          email: "attacker@evil.example",
          clerkId: "user_someone_else",
          id: "x"
        })
        expect(res.status).toBe(400)
        expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
        expect(issuePaths(res.body)).toEqual(["clerkId", "email", "id"])
        const [after] = yield* userRows(alice.clerkId)
        expect(after).toEqual(before)
      })
    )

    it.effect("a body of bytes is refused with 415, not applied (regression: it answered 200)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const [before] = yield* userRows(alice.clerkId)
        const res = yield* http(`${url}/api/v1/users/me`, {
          method: "PATCH",
          headers: { "content-type": "application/octet-stream", ...alice.headers },
          body: new Uint8Array([0, 1, 2])
        })
        expect(res.status).toBe(415)
        expect(res.body).toMatchObject({ success: false, error: { code: "UNSUPPORTED_MEDIA_TYPE" } })
        expect(yield* userRows(alice.clerkId)).toEqual([before])
      })
    )

    it.effect(
      "on an instance that still maps the token, a PATCH after another instance erased the account is a 401, not a 500",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const user = yield* provisionUser(url, "patchgone")
          // Another api instance erased the account: its tombstone, then the row gone. This one's cache still maps the token.
          yield* eraseElsewhere(user)
          const res = yield* patchMe(url, user.headers, { firstName: "Ghost" })
          expect(res.status).toBe(401)
          expect(res.body).toEqual({
            success: false,
            error: { code: "UNAUTHORIZED", message: "This account was erased", details: { reason: "account-erased" } }
          })
          expect(yield* userRows(user.clerkId)).toHaveLength(0)
        })
    )

    it.effect("invalid values are named per field", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* patchMe(url, alice.headers, {
          defaultTone: "creepy",
          preferredLanguage: "english please",
          firstName: ""
        })
        expect(res.status).toBe(400)
        expect(issuePaths(res.body)).toEqual(["defaultTone", "firstName", "preferredLanguage"])
      })
    )

    it.effect("one user's changes never touch another's row", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const [bobBefore] = yield* userRows(bob.clerkId)
        yield* patchMe(url, alice.headers, { firstName: "Changed" })
        const [bobAfter] = yield* userRows(bob.clerkId)
        expect(bobAfter).toEqual(bobBefore)
      })
    )
  })

  describe("DELETE /users/me (erasure)", () => {
    it.effect(
      "on an instance that still maps the token, creating a match after another instance erased the account is a 401, not a 500",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const user = yield* provisionUser(url, "matchgone")
          yield* eraseElsewhere(user)
          const res = yield* http(`${url}/api/v1/matches`, {
            method: "POST",
            headers: { "content-type": "application/json", ...user.headers },
            body: JSON.stringify({ name: "Sam" })
          })
          expect(res.status).toBe(401)
          expect(res.body).toEqual({
            success: false,
            error: { code: "UNAUTHORIZED", message: "This account was erased", details: { reason: "account-erased" } }
          })
          expect(yield* sql("SELECT id FROM matches WHERE user_id = $1", [user.id])).toEqual([])
        })
    )

    it.effect("erases the user and everything registered, keeps a hashed tombstone, and can be run again", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const erase = http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })

        const first = yield* erase
        expect(first.status).toBe(204)
        expect(first.text).toBe("")
        expect(yield* userRows(alice.clerkId)).toHaveLength(0)
        expect(erasedByProbe).toContainEqual({ id: alice.id, clerkId: alice.clerkId })
        const tombstones = yield* sql("SELECT * FROM erased_accounts WHERE clerk_id_hash = $1", [
          clerkIdHash(alice.clerkId)
        ])
        expect(tombstones).toHaveLength(1)
        expect(JSON.stringify(tombstones)).not.toContain(alice.clerkId)

        // The second call runs the (idempotent) steps again from the tombstone, the user row being
        // gone: what landed after the first one (a late upload) goes too.
        const calls = erasedByProbe.length
        const second = yield* erase
        expect(second.status).toBe(204)
        expect(erasedByProbe.slice(calls)).toEqual([{ id: alice.id, clerkId: alice.clerkId }])

        // The still-valid token does not bring the account back.
        const after = yield* http(`${url}/api/v1/users/me`, { headers: alice.headers })
        expect(after.status).toBe(401)
        expect(after.body).toEqual({
          success: false,
          error: { code: "UNAUTHORIZED", message: "This account was erased", details: { reason: "account-erased" } }
        })
        expect(yield* userRows(alice.clerkId)).toHaveLength(0)
        // Bob is untouched.
        expect(yield* userRows(bob.clerkId)).toHaveLength(1)
        expect((yield* http(`${url}/api/v1/users/me`, { headers: bob.headers })).status).toBe(200)
      })
    )

    it.effect("a failing step answers 500 and keeps the user, so a retry can finish the job", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        probeFailures = 1
        const failed = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
        expect(failed.status).toBe(500)
        expect(failed.body).toEqual({
          success: false,
          error: { code: "INTERNAL_ERROR", message: "An unexpected error occurred" }
        })
        expect(yield* userRows(alice.clerkId)).toHaveLength(1)
        const retried = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
        expect(retried.status).toBe(204)
        expect(yield* userRows(alice.clerkId)).toHaveLength(0)
      })
    )

    it.effect(
      "a client that hangs up mid-erasure does not leave it half done: the account is gone all the same",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          const hold = { started: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
          probeHold = hold
          const client = new AbortController()
          const sent = fetch(`${url}/api/v1/users/me`, {
            method: "DELETE",
            headers: alice.headers,
            signal: client.signal
          }).catch(() => "aborted" as const)
          yield* Deferred.await(hold.started)
          probeHold = undefined
          client.abort()
          expect(yield* Effect.promise(() => sent)).toBe("aborted")
          // A request on a new connection is answered after the server saw the first one close.
          expect((yield* http(`${url}/health/live`)).status).toBe(200)
          yield* Deferred.succeed(hold.release, undefined)
          yield* eventually(userRows(alice.clerkId), (rows) => rows.length === 0, "the account erased")
          expect(erasedByProbe).toContainEqual({ id: alice.id, clerkId: alice.clerkId })
        }).pipe(Effect.ensuring(Effect.sync(() => (probeHold = undefined)))),
      20_000
    )
  })
})

describe("provisioning across api instances", () => {
  it.live("two servers (two caches) racing on one new user still create one row", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("multi")
      const headers = bearer(tokenFor({ clerkId, email: `${clerkId}@test.dev` }))
      const burst = (url: string) =>
        Effect.all(
          Array.from({ length: 10 }, () => http(`${url}/api/v1/users/me`, { headers })),
          { concurrency: "unbounded" }
        )
      const serverA = testServer({ db: TestDb() })
      const serverB = testServer({ db: TestDb() })
      const [a, b] = yield* Effect.all(
        [
          Effect.flatMap(baseUrl, burst).pipe(Effect.provide(serverA)),
          Effect.flatMap(baseUrl, burst).pipe(Effect.provide(serverB))
        ],
        { concurrency: 2 }
      )
      expect([...a, ...b].every((res) => res.status === 200)).toBe(true)
      expect(yield* userRows(clerkId)).toHaveLength(1)
    }).pipe(Effect.provide(Layer.empty))
  )
})

describe("an erasure in progress (its tombstone written, the user row not yet deleted)", () => {
  it.live("refuses the token where it is not cached, and new uploads where it is", () =>
    Effect.gen(function* () {
      const { user, upload } = yield* Effect.gen(function* () {
        const url = yield* baseUrl
        const user = yield* provisionUser(url, "midway")
        // What DELETE /users/me writes first, before any step runs.
        yield* sql("INSERT INTO erased_accounts (clerk_id_hash, user_id) VALUES ($1, $2)", [
          clerkIdHash(user.clerkId),
          user.id
        ])
        // This server still maps the token to the user (its cache): no new upload URL all the same.
        const upload = yield* createUpload(url, user.headers, {
          contentType: "image/png",
          contentLength: 100,
          purpose: "session"
        })
        return { user, upload }
      }).pipe(Effect.provide(testServer({ db: TestDb() })))
      expect(upload.status).toBe(401)
      expect(upload.body).toMatchObject({ error: { code: "UNAUTHORIZED", details: { reason: "account-erased" } } })
      expect(yield* sql("SELECT id FROM uploads WHERE user_id = $1", [user.id])).toEqual([])

      // Another api instance (no cache): the row still exists, the token is refused anyway.
      const me = yield* Effect.flatMap(baseUrl, (url) =>
        http(`${url}/api/v1/users/me`, { headers: user.headers })
      ).pipe(Effect.provide(testServer({ db: TestDb() })))
      expect(me.status).toBe(401)
      expect(me.body).toMatchObject({ error: { code: "UNAUTHORIZED", details: { reason: "account-erased" } } })
    })
  )
})
