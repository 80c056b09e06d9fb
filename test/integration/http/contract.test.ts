/**
 * Issue #16, what the OpenAPI document promises, checked over HTTP: `limit` is an integer in
 * 1..100 on every list, a dislike needs no body, and a 401 says how to authenticate
 * (`WWW-Authenticate: Bearer`, RFC 6750). Rows are written with SQL: no AI provider is involved.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { sql, TestDb } from "../../support/database.ts"
import { http, issuePaths } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

/** A match, an opener and a completed session with one suggestion, owned by `userId`; ids are path-safe. */
const seed = (userId: string) =>
  Effect.gen(function* () {
    const tag = randomBytes(6).toString("hex")
    const ids = { match: `m${tag}`, opener: `o${tag}`, session: `s${tag}`, suggestion: `g${tag}` }
    yield* sql(`INSERT INTO matches (id, user_id, name, updated_at) VALUES ($1, $2, 'Sam', now())`, [ids.match, userId])
    yield* sql(
      `INSERT INTO magic_openers (id, user_id, match_id, batch_id, position, text, tone, language,
         prompt_version, provider, model)
       VALUES ($1, $2, $3, $4, 0, 'Coffee or tea?', 'playful', 'en', 'v1', 'local', 'local-1')`,
      [ids.opener, userId, ids.match, `b${tag}`]
    )
    yield* sql(
      `INSERT INTO sessions (id, user_id, match_id, status, tone, language, updated_at, completed_at)
       VALUES ($1, $2, $3, 'completed', 'witty', 'en', now(), now())`,
      [ids.session, userId, ids.match]
    )
    yield* sql(
      `INSERT INTO suggestions (id, session_id, batch, position, text, tone, prompt_version, provider, model)
       VALUES ($1, $2, 0, 0, 'Coffee sounds great', 'witty', 'v1', 'local', 'local-1')`,
      [ids.suggestion, ids.session]
    )
    return ids
  })

const LISTS = ["/api/v1/matches", "/api/v1/magic-openers", "/api/v1/sessions"]

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("the contract of issue #16", (it) => {
  describe("limit", () => {
    it.effect("is decoded from the query string: 5 works, 1000 is a 400 VALIDATION_ERROR naming limit", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        yield* seed(alice.id)
        for (const path of LISTS) {
          const ok = yield* http(`${url}${path}?limit=5`, { headers: alice.headers })
          expect(ok.status, path).toBe(200)
          expect(ok.body, path).toMatchObject({ success: true, data: { items: [expect.anything()], nextCursor: null } })
          const tooMany = yield* http(`${url}${path}?limit=1000`, { headers: alice.headers })
          expect(tooMany.status, path).toBe(400)
          expect(tooMany.body, path).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
          expect(issuePaths(tooMany.body), path).toEqual(["limit"])
        }
      })
    )
  })

  describe("dislike", () => {
    it.effect("a POST with no body at all is a dislike without a reason (opener and suggestion)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const ids = yield* seed(alice.id)
        for (const [path, id] of [
          [`/api/v1/magic-openers/${ids.opener}/dislike`, ids.opener],
          [`/api/v1/sessions/${ids.session}/suggestions/${ids.suggestion}/dislike`, ids.suggestion]
        ] as const) {
          const res = yield* http(`${url}${path}`, { method: "POST", headers: alice.headers })
          expect(res.status, path).toBe(200)
          expect(res.body).toMatchObject({ success: true, data: { id, feedback: "disliked", dislikeReason: null } })
        }
      })
    )
  })

  describe("401", () => {
    it.effect("without a token: WWW-Authenticate: Bearer", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const res = yield* http(`${url}/api/v1/users/me`)
        expect(res.status).toBe(401)
        expect(res.body).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } })
        expect(res.headers.get("www-authenticate")).toBe("Bearer")
      })
    )

    it.effect('with a refused token: WWW-Authenticate: Bearer error="invalid_token"', () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        // `/users/me` DELETE goes through the other middleware (the Clerk identity alone, for erasure).
        for (const [method, path] of [
          ["GET", "/api/v1/matches"],
          ["DELETE", "/api/v1/users/me"]
        ] as const) {
          const res = yield* http(`${url}${path}`, { method, headers: { authorization: "Bearer not-a-jwt" } })
          expect(res.status, path).toBe(401)
          expect(res.body, path).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } })
          expect(res.headers.get("www-authenticate"), path).toBe('Bearer error="invalid_token"')
        }
      })
    )

    it.effect("an accepted token's answers carry no challenge, errors included", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const ok = yield* http(`${url}/api/v1/matches`, { headers: alice.headers })
        expect(ok.status).toBe(200)
        expect(ok.headers.get("www-authenticate")).toBeNull()
        const missing = yield* http(`${url}/api/v1/matches/cmissing0000000000000000`, { headers: alice.headers })
        expect(missing.status).toBe(404)
        expect(missing.headers.get("www-authenticate")).toBeNull()
      })
    )
  })

  describe("GET /sessions?matchId=", () => {
    it.effect("lists that match's sessions only; another user's match lists nothing; a malformed id is a 400", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const first = yield* seed(alice.id)
        const second = yield* seed(alice.id)
        const unmatched = `s${randomBytes(6).toString("hex")}`
        yield* sql(
          `INSERT INTO sessions (id, user_id, status, tone, language, updated_at) VALUES ($1, $2, 'queued', 'witty', 'en', now())`,
          [unmatched, alice.id]
        )
        const list = (headers: Record<string, string>, query: string) =>
          http(`${url}/api/v1/sessions${query}`, { headers })
        const idsOf = (body: unknown) =>
          (body as { data: { items: Array<{ id: string }> } }).data.items.map((i) => i.id)

        const all = yield* list(alice.headers, "")
        expect(idsOf(all.body).sort()).toEqual([first.session, second.session, unmatched].sort())

        const byMatch = yield* list(alice.headers, `?matchId=${first.match}`)
        expect(byMatch.status).toBe(200)
        expect(byMatch.body).toMatchObject({
          success: true,
          data: { items: [{ id: first.session, matchId: first.match }], nextCursor: null }
        })
        expect(idsOf(byMatch.body)).toEqual([first.session])

        // Bob asking for Alice's match: an empty page, not an error (and none of Alice's sessions).
        const foreign = yield* list(bob.headers, `?matchId=${first.match}`)
        expect(foreign.status).toBe(200)
        expect(foreign.body).toEqual({ success: true, data: { items: [], nextCursor: null } })

        const malformed = yield* list(alice.headers, "?matchId=not-an-id")
        expect(malformed.status).toBe(400)
        expect(issuePaths(malformed.body)).toEqual(["matchId"])
      })
    )
  })
})
