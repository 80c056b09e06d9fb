/**
 * `/api/v1/matches` against the real PostgreSQL: CRUD, cursor pagination, ownership (BOLA) on
 * every route, minors refused, profile screenshots taken through the UploadsService.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb, sql } from "../../support/database.ts"
import { failure, http, issuePaths } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { createMatch, matchRows, newMatch, patchMatch, type WireMatch } from "../openers/support.ts"

const MINOR = failure(
  "SAFETY_BLOCKED",
  "This profile states or implies someone under 18: Wingmate does not help with that",
  { reason: "minor" }
)
const MATCH_NOT_FOUND = failure("NOT_FOUND", "Match not found")
/** A well-formed id no row has. */
const MISSING_ID = "cmissing0000000000000000"

const matchUrl = (url: string, id: string) => `${url}/api/v1/matches/${id}`

const listPage = (url: string, headers: Record<string, string>, query: string) =>
  http(`${url}/api/v1/matches${query}`, { headers })

/** Uploads a small PNG with `purpose` through the API, the app's two steps: the upload id. */
const uploaded = (url: string, headers: Record<string, string>, purpose: "profile" | "session") =>
  Effect.gen(function* () {
    const bytes = yield* Effect.promise(() => tinyImage("png"))
    const ticket = yield* ticketFor(url, headers, bytes, "image/png", purpose)
    const put = yield* sendBytes(ticket, bytes)
    expect(put.status).toBe(200)
    return ticket.uploadId
  })

const cursorOf = (iso: string, id: string) => Buffer.from(`${iso}|${id}`).toString("base64url")

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("matches", (it) => {
  describe("CRUD", () => {
    it.effect("create answers 201 with the match, trimmed, and the row belongs to the caller", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* createMatch(url, alice.headers, {
          name: "  Sam ",
          bio: "Climber, coffee snob",
          interests: ["climbing", " ramen "],
          notes: "Met at the gym",
          platform: "hinge"
        })
        expect(res.status).toBe(201)
        expect(res.body).toEqual({
          success: true,
          data: {
            id: expect.any(String),
            name: "Sam",
            bio: "Climber, coffee snob",
            interests: ["climbing", "ramen"],
            notes: "Met at the gym",
            platform: "hinge",
            profileUploadId: null,
            extractedProfile: null,
            createdAt: expect.any(String),
            updatedAt: expect.any(String)
          }
        })
        const created = (res.body as { data: WireMatch }).data
        const rows = yield* matchRows(alice.id)
        expect(rows).toEqual([
          expect.objectContaining({
            id: created.id,
            user_id: alice.id,
            name: "Sam",
            bio: "Climber, coffee snob",
            interests: ["climbing", "ramen"],
            notes: "Met at the gym",
            platform: "hinge",
            profile_upload_id: null,
            extracted_profile: null
          })
        ])
      })
    )

    it.effect("only a name is required; the rest defaults to empty", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* createMatch(url, alice.headers, { name: "Kim" })
        expect(res.status).toBe(201)
        expect(res.body).toMatchObject({
          success: true,
          data: { name: "Kim", bio: null, interests: [], notes: null, platform: null, profileUploadId: null }
        })
      })
    )

    it.effect("get answers the same match as create", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const created = yield* newMatch(url, alice.headers, { name: "Sam", interests: ["chess"] })
        const res = yield* http(matchUrl(url, created.id), { headers: alice.headers })
        expect(res.status).toBe(200)
        expect(res.body).toEqual({ success: true, data: created })
      })
    )

    it.effect("list: newest first across pages, nextCursor until the last page", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const created: Array<WireMatch> = []
        for (const name of ["One", "Two", "Three", "Four", "Five"]) {
          created.push(yield* newMatch(url, alice.headers, { name }))
        }
        const newestFirst = [...created].reverse()

        const first = yield* listPage(url, alice.headers, "?limit=2")
        expect(first.status).toBe(200)
        const page1 = (first.body as { data: { items: Array<WireMatch>; nextCursor: string | null } }).data
        expect(page1.items).toEqual(newestFirst.slice(0, 2))
        expect(page1.nextCursor).toEqual(expect.any(String))

        const second = yield* listPage(url, alice.headers, `?limit=2&cursor=${page1.nextCursor ?? ""}`)
        expect(second.status).toBe(200)
        const page2 = (second.body as { data: { items: Array<WireMatch>; nextCursor: string | null } }).data
        expect(page2.items).toEqual(newestFirst.slice(2, 4))
        expect(page2.nextCursor).toEqual(expect.any(String))

        const third = yield* listPage(url, alice.headers, `?limit=2&cursor=${page2.nextCursor ?? ""}`)
        expect(third.status).toBe(200)
        expect(third.body).toEqual({ success: true, data: { items: newestFirst.slice(4), nextCursor: null } })

        // Without a limit: 20, all of them, no next page.
        const all = yield* listPage(url, alice.headers, "")
        expect(all.body).toEqual({ success: true, data: { items: newestFirst, nextCursor: null } })
      })
    )

    it.effect("an exactly full last page has no nextCursor", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const a = yield* newMatch(url, alice.headers, { name: "A" })
        const b = yield* newMatch(url, alice.headers, { name: "B" })
        const res = yield* listPage(url, alice.headers, "?limit=2")
        expect(res.body).toEqual({ success: true, data: { items: [b, a], nextCursor: null } })
      })
    )

    it.effect("an invalid cursor or limit is a 400 VALIDATION_ERROR naming it", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        yield* newMatch(url, alice.headers, { name: "A" })
        const cursorIssue = {
          success: false,
          error: {
            code: "VALIDATION_ERROR",
            message: "The request is invalid: see details.issues",
            details: { issues: [{ path: "cursor", message: "Expected the nextCursor of a previous page" }] }
          }
        }
        for (const cursor of [
          "not-a-cursor",
          cursorOf("yesterday", "cabc"),
          cursorOf(new Date().toISOString(), "bad id!"),
          cursorOf(new Date().toISOString(), "")
        ]) {
          const res = yield* listPage(url, alice.headers, `?cursor=${encodeURIComponent(cursor)}`)
          expect(res.status).toBe(400)
          expect(res.body).toEqual(cursorIssue)
        }
        const tooLong = yield* listPage(url, alice.headers, `?cursor=${"a".repeat(201)}`)
        expect(tooLong.status).toBe(400)
        expect(issuePaths(tooLong.body)).toEqual(["cursor"])
        for (const limit of ["0", "101", "2.5", "many"]) {
          const res = yield* listPage(url, alice.headers, `?limit=${limit}`)
          expect(res.status).toBe(400)
          expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
          expect(issuePaths(res.body)).toEqual(["limit"])
        }
      })
    )

    it.effect("a cursor with a date PostgreSQL cannot store is a 400, not a 500", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        yield* newMatch(url, alice.headers, { name: "A" })
        // Valid for JavaScript's Date (±275 760 years), outside PostgreSQL's timestamp range.
        for (const iso of ["-200000-01-01T00:00:00.000Z", "+275000-01-01T00:00:00.000Z"]) {
          const res = yield* listPage(url, alice.headers, `?cursor=${cursorOf(iso, "cabc")}`)
          expect(res.status).toBe(400)
          expect(issuePaths(res.body)).toEqual(["cursor"])
        }
      })
    )

    it.effect("patch changes the given fields, null clears, the rest stays", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const created = yield* newMatch(url, alice.headers, {
          name: "Sam",
          bio: "Climber",
          interests: ["climbing"],
          notes: "Gym",
          platform: "hinge"
        })
        const res = yield* patchMatch(url, alice.headers, created.id, {
          name: " Samantha ",
          bio: null,
          interests: ["ramen", "jazz"],
          platform: null
        })
        expect(res.status).toBe(200)
        expect(res.body).toEqual({
          success: true,
          data: {
            ...created,
            name: "Samantha",
            bio: null,
            interests: ["ramen", "jazz"],
            notes: "Gym",
            platform: null,
            updatedAt: expect.any(String)
          }
        })
        const updated = (res.body as { data: WireMatch }).data
        expect(Date.parse(updated.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt))

        const notes = yield* patchMatch(url, alice.headers, created.id, { notes: null })
        expect(notes.body).toEqual({ success: true, data: { ...updated, notes: null, updatedAt: expect.any(String) } })

        const empty = yield* patchMatch(url, alice.headers, created.id, {})
        expect(empty.status).toBe(200)
        expect(empty.body).toMatchObject({ data: { name: "Samantha", bio: null, notes: null, platform: null } })

        const [row] = yield* matchRows(alice.id)
        expect(row).toMatchObject({
          name: "Samantha",
          bio: null,
          interests: ["ramen", "jazz"],
          notes: null,
          platform: null
        })
      })
    )

    it.effect("unknown fields are a 400 naming them, on create and patch; nothing is written", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const create = yield* createMatch(url, alice.headers, { name: "Sam", userId: bob.id, age: 30 })
        expect(create.status).toBe(400)
        expect(create.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
        expect(issuePaths(create.body)).toEqual(["age", "userId"])
        expect(yield* matchRows(alice.id)).toEqual([])

        const created = yield* newMatch(url, alice.headers, { name: "Sam" })
        const [before] = yield* matchRows(alice.id)
        const patch = yield* patchMatch(url, alice.headers, created.id, {
          name: "Mallory",
          userId: bob.id,
          extractedProfile: { age: 30 },
          createdAt: "2020-01-01T00:00:00.000Z"
        })
        expect(patch.status).toBe(400)
        expect(issuePaths(patch.body)).toEqual(["createdAt", "extractedProfile", "userId"])
        expect(yield* matchRows(alice.id)).toEqual([before])
      })
    )

    it.effect("invalid values are named per field; a name cannot be cleared", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const create = yield* createMatch(url, alice.headers, {
          bio: "x".repeat(2001),
          interests: Array.from({ length: 31 }, (_, i) => `i${i}`),
          platform: "",
          profileUploadId: "../../etc/passwd"
        })
        expect(create.status).toBe(400)
        expect(issuePaths(create.body)).toEqual(["bio", "interests", "name", "platform", "profileUploadId"])

        const created = yield* newMatch(url, alice.headers, { name: "Sam" })
        const patch = yield* patchMatch(url, alice.headers, created.id, { name: null })
        expect(patch.status).toBe(400)
        expect(issuePaths(patch.body)).toEqual(["name"])
        const badId = yield* http(matchUrl(url, "not-an-id!"), { headers: alice.headers })
        expect(badId.status).toBe(400)
        expect(issuePaths(badId.body)).toEqual(["matchId"])
      })
    )

    it.effect("delete answers 204, then 404; the row is gone", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const created = yield* newMatch(url, alice.headers, { name: "Sam" })
        const first = yield* http(matchUrl(url, created.id), { method: "DELETE", headers: alice.headers })
        expect(first.status).toBe(204)
        expect(first.text).toBe("")
        expect(yield* matchRows(alice.id)).toEqual([])
        const second = yield* http(matchUrl(url, created.id), { method: "DELETE", headers: alice.headers })
        expect(second.status).toBe(404)
        expect(second.body).toEqual(MATCH_NOT_FOUND)
        const get = yield* http(matchUrl(url, created.id), { headers: alice.headers })
        expect(get.status).toBe(404)
        expect(get.body).toEqual(MATCH_NOT_FOUND)
      })
    )

    it.effect("every route needs a token", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const list = yield* http(`${url}/api/v1/matches`)
        expect(list.status).toBe(401)
        const create = yield* createMatch(url, {}, { name: "Sam" })
        expect(create.status).toBe(401)
        expect(create.body).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } })
      })
    )
  })

  describe("ownership (BOLA)", () => {
    it.effect("another user's match answers exactly like a missing one on every route, and is untouched", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Alice's match" })
        const [before] = yield* matchRows(alice.id)

        const requests: ReadonlyArray<readonly [string, RequestInit]> = [
          ["GET", {}],
          [
            "PATCH",
            { headers: { "content-type": "application/json" }, body: JSON.stringify({ name: "Hijacked", bio: null }) }
          ],
          ["DELETE", {}]
        ]
        for (const [method, init] of requests) {
          const answer = (id: string) =>
            http(matchUrl(url, id), {
              ...init,
              method,
              headers: { ...(init.headers as Record<string, string> | undefined), ...bob.headers }
            })
          const theirs = yield* answer(match.id)
          const missing = yield* answer(MISSING_ID)
          expect({ method, status: theirs.status, body: theirs.body }).toEqual({
            method,
            status: 404,
            body: MATCH_NOT_FOUND
          })
          expect({ method, status: missing.status, body: missing.body }).toEqual({
            method,
            status: 404,
            body: MATCH_NOT_FOUND
          })
        }
        const bobsList = yield* listPage(url, bob.headers, "")
        expect(bobsList.body).toEqual({ success: true, data: { items: [], nextCursor: null } })
        expect(yield* matchRows(alice.id)).toEqual([before])
        const own = yield* http(matchUrl(url, match.id), { headers: alice.headers })
        expect(own.body).toEqual({ success: true, data: match })
      })
    )
  })

  describe("minors", () => {
    it.effect("a profile stating or implying a minor is refused at creation (422) and nothing is written", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        for (const body of [
          { name: "Sam", bio: "16 yo, here for fun" },
          { name: "Sam", notes: "she said she's in 10th grade" },
          { name: "Sam", interests: ["anime", "high school soccer"] },
          { name: "Teen Sam" }
        ]) {
          const res = yield* createMatch(url, alice.headers, body)
          expect(res.status).toBe(422)
          expect(res.body).toEqual(MINOR)
        }
        expect(yield* matchRows(alice.id)).toEqual([])
      })
    )

    it.effect("an update that makes the profile a minor's is refused (422), the row unchanged", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Climber" })
        const [before] = yield* matchRows(alice.id)
        for (const patch of [{ bio: "I'm 15 lol" }, { interests: ["teen drama"] }, { notes: "age: 17" }]) {
          const res = yield* patchMatch(url, alice.headers, match.id, patch)
          expect(res.status).toBe(422)
          expect(res.body).toEqual(MINOR)
        }
        expect(yield* matchRows(alice.id)).toEqual([before])
      })
    )
  })

  describe("profile screenshots", () => {
    it.effect("an own verified profile upload is taken once; a second match cannot reuse it", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploaded(url, alice.headers, "profile")
        const res = yield* createMatch(url, alice.headers, { name: "Sam", profileUploadId: uploadId })
        expect(res.status).toBe(201)
        expect(res.body).toMatchObject({ success: true, data: { profileUploadId: uploadId, extractedProfile: null } })
        const [upload] = yield* sql("SELECT status, used_at FROM uploads WHERE id = $1", [uploadId])
        expect(upload).toEqual({ status: "used", used_at: expect.any(Date) })

        const again = yield* createMatch(url, alice.headers, { name: "Kim", profileUploadId: uploadId })
        expect(again.status).toBe(409)
        expect(again.body).toEqual(
          failure("UPLOAD_ALREADY_USED", "This upload was already used: upload the image again")
        )
        expect(yield* matchRows(alice.id)).toHaveLength(1)
      })
    )

    it.effect("another user's upload answers 404 exactly like a missing one; nothing is written", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const bobsUpload = yield* uploaded(url, bob.headers, "profile")
        const theirs = yield* createMatch(url, alice.headers, { name: "Sam", profileUploadId: bobsUpload })
        const missing = yield* createMatch(url, alice.headers, { name: "Sam", profileUploadId: MISSING_ID })
        expect(theirs.status).toBe(404)
        expect(theirs.body).toEqual(missing.body)
        expect(missing.status).toBe(404)
        expect(missing.body).toMatchObject({ success: false, error: { code: "NOT_FOUND" } })
        expect(yield* matchRows(alice.id)).toEqual([])

        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        const [before] = yield* matchRows(alice.id)
        const patched = yield* patchMatch(url, alice.headers, match.id, { profileUploadId: bobsUpload })
        expect(patched.status).toBe(404)
        expect(patched.body).toEqual(missing.body)
        expect(yield* matchRows(alice.id)).toEqual([before])
        // Bob's upload was not taken.
        const [upload] = yield* sql("SELECT used_at FROM uploads WHERE id = $1", [bobsUpload])
        expect(upload).toEqual({ used_at: null })
      })
    )

    it.effect("an upload declared for sessions is refused with 422 UPLOAD_PURPOSE_MISMATCH; nothing is written", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const sessionUpload = yield* uploaded(url, alice.headers, "session")
        const mismatch = failure("UPLOAD_PURPOSE_MISMATCH", "This upload was declared for session, not profile", {
          declared: "session",
          requested: "profile"
        })
        const res = yield* createMatch(url, alice.headers, { name: "Sam", profileUploadId: sessionUpload })
        expect(res.status).toBe(422)
        expect(res.body).toEqual(mismatch)
        expect(yield* matchRows(alice.id)).toEqual([])

        const match = yield* newMatch(url, alice.headers, { name: "Sam" })
        const patched = yield* patchMatch(url, alice.headers, match.id, { profileUploadId: sessionUpload })
        expect(patched.status).toBe(422)
        expect(patched.body).toEqual(mismatch)
        const [upload] = yield* sql("SELECT status, used_at FROM uploads WHERE id = $1", [sessionUpload])
        expect(upload).toEqual({ status: "verified", used_at: null })
      })
    )

    it.effect("patch sets a new screenshot (its reading reset) and null removes it", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const first = yield* uploaded(url, alice.headers, "profile")
        const match = yield* newMatch(url, alice.headers, { name: "Sam", profileUploadId: first })
        yield* sql("UPDATE matches SET extracted_profile = $1 WHERE id = $2", [
          JSON.stringify({ name: "Sam", age: 29, bio: null, prompts: [], interests: ["jazz"] }),
          match.id
        ])
        const read = yield* http(matchUrl(url, match.id), { headers: alice.headers })
        expect(read.body).toMatchObject({
          data: { extractedProfile: { name: "Sam", age: 29, bio: null, prompts: [], interests: ["jazz"] } }
        })

        const second = yield* uploaded(url, alice.headers, "profile")
        const replaced = yield* patchMatch(url, alice.headers, match.id, { profileUploadId: second })
        expect(replaced.status).toBe(200)
        expect(replaced.body).toMatchObject({ data: { profileUploadId: second, extractedProfile: null } })

        const same = yield* patchMatch(url, alice.headers, match.id, { profileUploadId: second })
        expect(same.status).toBe(200)

        const removed = yield* patchMatch(url, alice.headers, match.id, { profileUploadId: null })
        expect(removed.status).toBe(200)
        expect(removed.body).toMatchObject({ data: { profileUploadId: null, extractedProfile: null } })
      })
    )
  })
})
