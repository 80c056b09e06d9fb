/**
 * Feedback on openers (like, unlike, dislike with a reason) and what it does to the next prompt;
 * the history (`GET /magic-openers`), ownership, and erasure of matches and openers.
 */
import { afterAll, beforeEach, describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb, sql } from "../../support/database.ts"
import { failure, http, issuePaths, postJson } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { type TestUser, twoUsers } from "../../support/users.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { aiCallRows, generateJson, matchRows, newMatch, openAiPrompt, openerRows, type WireOpener } from "./support.ts"
import { usageRows } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(async () => {
  await openai.close()
})
beforeEach(() => {
  openai.reset()
})

const Server = testServer({
  db: TestDb(),
  config: {
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
    AI_TIMEOUT_MS: "1500",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    OPENERS_DAILY_LIMIT: "10000"
  }
})

const OPENER_NOT_FOUND = failure("NOT_FOUND", "Opener not found")
const MISSING_ID = "cmissing0000000000000000"

/** Generates openers with exactly these texts (JSON mode): the saved openers, in order. */
const generated = (url: string, user: TestUser, payload: Record<string, unknown>, lines: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    openai.enqueue({ kind: "ok", text: lines.map((line) => `${line}\n`).join("") })
    const res = yield* generateJson(url, user.headers, { count: lines.length, ...payload })
    if (res.status !== 200) return yield* Effect.dieMessage(`generation failed: ${res.status} ${res.text}`)
    return (res.body as { data: { openers: ReadonlyArray<WireOpener> } }).data.openers
  })

const like = (url: string, user: TestUser, id: string) =>
  http(`${url}/api/v1/magic-openers/${id}/like`, { method: "POST", headers: user.headers })
const unlike = (url: string, user: TestUser, id: string) =>
  http(`${url}/api/v1/magic-openers/${id}/like`, { method: "DELETE", headers: user.headers })
const dislike = (url: string, user: TestUser, id: string, body: unknown) =>
  postJson(`${url}/api/v1/magic-openers/${id}/dislike`, JSON.stringify(body), user.headers)

const history = (url: string, user: TestUser, query = "") =>
  http(`${url}/api/v1/magic-openers${query}`, { headers: user.headers })

const feedbackRow = (id: string) =>
  Effect.map(sql("SELECT feedback, dislike_reason, feedback_at FROM magic_openers WHERE id = $1", [id]), (r) => r[0])

type Page = { readonly items: ReadonlyArray<WireOpener>; readonly nextCursor: string | null }

layer(Server, { timeout: 60_000 })("magic openers: feedback and history", (it) => {
  describe("like, unlike, dislike", () => {
    it.effect("each is idempotent: the second call answers the same body; the row says so", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const [opener] = yield* generated(url, alice, { profile: { name: "Sam" } }, ["Coffee or tea?"])
        if (opener === undefined) return yield* Effect.dieMessage("no opener")

        const liked = yield* like(url, alice, opener.id)
        expect(liked.status).toBe(200)
        expect(liked.body).toEqual({ success: true, data: { ...opener, feedback: "liked", dislikeReason: null } })
        const likedAgain = yield* like(url, alice, opener.id)
        expect(likedAgain.status).toBe(200)
        expect(likedAgain.body).toEqual(liked.body)
        const likedRow = yield* feedbackRow(opener.id)
        expect(likedRow).toEqual({ feedback: "liked", dislike_reason: null, feedback_at: expect.any(Date) })

        const unliked = yield* unlike(url, alice, opener.id)
        expect(unliked.status).toBe(200)
        expect(unliked.body).toEqual({ success: true, data: opener })
        const unlikedAgain = yield* unlike(url, alice, opener.id)
        expect(unlikedAgain.body).toEqual(unliked.body)
        expect(yield* feedbackRow(opener.id)).toEqual({ feedback: null, dislike_reason: null, feedback_at: null })

        const disliked = yield* dislike(url, alice, opener.id, { reason: "  too cheesy " })
        expect(disliked.status).toBe(200)
        expect(disliked.body).toEqual({
          success: true,
          data: { ...opener, feedback: "disliked", dislikeReason: "too cheesy" }
        })
        const dislikedAgain = yield* dislike(url, alice, opener.id, { reason: "too cheesy" })
        expect(dislikedAgain.body).toEqual(disliked.body)
        expect(yield* feedbackRow(opener.id)).toEqual({
          feedback: "disliked",
          dislike_reason: "too cheesy",
          feedback_at: expect.any(Date)
        })

        // Unlike leaves a dislike alone; another reason replaces the first; none clears it.
        expect((yield* unlike(url, alice, opener.id)).body).toEqual(disliked.body)
        const otherReason = yield* dislike(url, alice, opener.id, { reason: "too long" })
        expect(otherReason.body).toMatchObject({ data: { feedback: "disliked", dislikeReason: "too long" } })
        const noReason = yield* dislike(url, alice, opener.id, {})
        expect(noReason.body).toMatchObject({ data: { feedback: "disliked", dislikeReason: null } })

        // A like replaces a dislike and its reason.
        yield* dislike(url, alice, opener.id, { reason: "meh" })
        const relike = yield* like(url, alice, opener.id)
        expect(relike.body).toEqual(liked.body)
        expect(yield* feedbackRow(opener.id)).toMatchObject({ feedback: "liked", dislike_reason: null })
      })
    )

    it.effect("a reason over 300 characters or an unknown field is a 400; nothing changes", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const [opener] = yield* generated(url, alice, { profile: { name: "Sam" } }, ["Coffee or tea?"])
        if (opener === undefined) return yield* Effect.dieMessage("no opener")
        const long = yield* dislike(url, alice, opener.id, { reason: "x".repeat(301) })
        expect(long.status).toBe(400)
        expect(issuePaths(long.body)).toEqual(["reason"])
        const extra = yield* dislike(url, alice, opener.id, { reason: "meh", feedback: "liked" })
        expect(extra.status).toBe(400)
        expect(issuePaths(extra.body)).toEqual(["feedback"])
        expect(yield* feedbackRow(opener.id)).toEqual({ feedback: null, dislike_reason: null, feedback_at: null })
      })
    )

    it.effect("another user's opener answers exactly like a missing one, and is untouched", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const [opener] = yield* generated(url, alice, { profile: { name: "Sam" } }, ["Coffee or tea?"])
        if (opener === undefined) return yield* Effect.dieMessage("no opener")
        const calls = [
          (id: string) => like(url, bob, id),
          (id: string) => unlike(url, bob, id),
          (id: string) => dislike(url, bob, id, { reason: "spite" })
        ]
        for (const call of calls) {
          const theirs = yield* call(opener.id)
          const missing = yield* call(MISSING_ID)
          expect({ status: theirs.status, body: theirs.body }).toEqual({ status: 404, body: OPENER_NOT_FOUND })
          expect({ status: missing.status, body: missing.body }).toEqual({ status: 404, body: OPENER_NOT_FOUND })
        }
        expect(yield* feedbackRow(opener.id)).toEqual({ feedback: null, dislike_reason: null, feedback_at: null })
        const invalid = yield* like(url, bob, "not-an-id!")
        expect(invalid.status).toBe(400)
        expect(issuePaths(invalid.body)).toEqual(["openerId"])
      })
    )
  })

  describe("feedback in the next prompt", () => {
    it.effect("liked openers are style examples, disliked ones come with their reason; only the user's own", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const sam = yield* newMatch(url, alice.headers, { name: "Sam" })
        const [a, b, c] = yield* generated(url, alice, { matchId: sam.id }, [
          "Coffee or tea, Sam?",
          "Are you a parking ticket? Because you have fine written all over you",
          "Best climbing spot nearby?"
        ])
        if (a === undefined || b === undefined || c === undefined) return yield* Effect.dieMessage("no openers")
        expect((yield* like(url, alice, a.id)).status).toBe(200)
        expect((yield* dislike(url, alice, b.id, { reason: "too cheesy" })).status).toBe(200)
        expect((yield* dislike(url, alice, c.id, {})).status).toBe(200)
        // Bob's feedback is his alone.
        const [bobs] = yield* generated(url, bob, { profile: { name: "Lee" } }, ["Bob's secret favourite?"])
        if (bobs === undefined) return yield* Effect.dieMessage("no opener")
        expect((yield* like(url, bob, bobs.id)).status).toBe(200)

        // The next generation, for another match: the feedback is the user's, not the match's.
        const kim = yield* newMatch(url, alice.headers, { name: "Kim" })
        openai.reset()
        yield* generated(url, alice, { matchId: kim.id }, ["Fresh one?"])
        const prompt = openAiPrompt(openai.requests[0]?.body)
        expect(prompt).toContain(
          '\nOpeners this user liked before (follow their style, do not copy them):\n- "Coffee or tea, Sam?"\n'
        )
        expect(prompt).toContain(
          "\nOpeners this user disliked (avoid what made them bad):\n" +
            '- "Best climbing spot nearby?"\n' +
            '- "Are you a parking ticket? Because you have fine written all over you" (reason: "too cheesy")\n'
        )
        expect(prompt).not.toContain("Bob's secret favourite?")
        // Kim has no openers yet; Sam's are not "already sent" to Kim.
        expect(prompt).not.toContain("Openers already sent")

        // Taking the like back takes it out of the prompt.
        expect((yield* unlike(url, alice, a.id)).status).toBe(200)
        openai.reset()
        yield* generated(url, alice, { profile: { name: "Lou" } }, ["Another?"])
        expect(openAiPrompt(openai.requests[0]?.body)).not.toContain("Openers this user liked before")
      })
    )

    it.effect("a user without feedback gets a prompt without those sections", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        yield* generated(url, alice, { profile: { name: "Sam" } }, ["Hi?"])
        const prompt = openAiPrompt(openai.requests[0]?.body)
        expect(prompt).not.toContain("liked before")
        expect(prompt).not.toContain("disliked")
        expect(prompt).toContain("Now write the 1 openers, one per line.")
      })
    )
  })

  describe("history", () => {
    it.effect("GET /magic-openers?matchId= lists the match's openers newest first, page by page", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const sam = yield* newMatch(url, alice.headers, { name: "Sam" })
        const kim = yield* newMatch(url, alice.headers, { name: "Kim" })
        const batch1 = yield* generated(url, alice, { matchId: sam.id }, ["One?", "Two?", "Three?"])
        const forKim = yield* generated(url, alice, { matchId: kim.id }, ["Kim one?"])
        const batch2 = yield* generated(url, alice, { matchId: sam.id }, ["Four?", "Five?"])
        const newestFirst = [...batch1, ...batch2].reverse()
        expect(newestFirst.map((opener) => opener.text)).toEqual(["Five?", "Four?", "Three?", "Two?", "One?"])

        const pages: Array<Page> = []
        let cursor: string | null = ""
        while (cursor !== null) {
          const query: string = `?matchId=${sam.id}&limit=2${cursor === "" ? "" : `&cursor=${cursor}`}`
          const res = yield* history(url, alice, query)
          expect(res.status).toBe(200)
          const page = (res.body as { data: Page }).data
          pages.push(page)
          cursor = page.nextCursor
        }
        expect(pages.map((page) => page.items)).toEqual([
          newestFirst.slice(0, 2),
          newestFirst.slice(2, 4),
          newestFirst.slice(4)
        ])
        expect(pages.map((page) => page.nextCursor === null)).toEqual([false, false, true])

        // Without matchId: every opener of the user, Kim's included.
        const all = yield* history(url, alice)
        expect(all.body).toEqual({
          success: true,
          data: { items: [...batch1, ...forKim, ...batch2].reverse(), nextCursor: null }
        })
      })
    )

    it.effect("another user's openers are never listed, not even by their matchId", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const sam = yield* newMatch(url, alice.headers, { name: "Sam" })
        yield* generated(url, alice, { matchId: sam.id }, ["Alice's only?"])
        const bobs = yield* generated(url, bob, { profile: { name: "Lee" } }, ["Bob's only?"])

        const byMatch = yield* history(url, bob, `?matchId=${sam.id}`)
        expect(byMatch.status).toBe(200)
        expect(byMatch.body).toEqual({ success: true, data: { items: [], nextCursor: null } })
        const all = yield* history(url, bob)
        expect(all.body).toEqual({ success: true, data: { items: bobs, nextCursor: null } })
      })
    )

    it.effect("an invalid cursor, limit or matchId is a 400 naming it", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        for (const [query, path] of [
          ["?cursor=garbage", "cursor"],
          ["?limit=0", "limit"],
          ["?matchId=../x", "matchId"]
        ] as const) {
          const res = yield* history(url, alice, query)
          expect(res.status).toBe(400)
          expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
          expect(issuePaths(res.body)).toEqual([path])
        }
      })
    )
  })

  describe("deletion and erasure", () => {
    it.effect("deleting a match deletes its openers, not the others", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const sam = yield* newMatch(url, alice.headers, { name: "Sam" })
        yield* generated(url, alice, { matchId: sam.id }, ["For Sam?"])
        yield* generated(url, alice, { profile: { name: "Inline" } }, ["Inline one?"])
        const res = yield* http(`${url}/api/v1/matches/${sam.id}`, { method: "DELETE", headers: alice.headers })
        expect(res.status).toBe(204)
        expect((yield* openerRows(alice.id)).map((row) => row["text"])).toEqual(["Inline one?"])
      })
    )

    it.effect("DELETE /users/me removes the user's matches, openers, ledger, quota rows; the other keeps theirs", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        for (const user of [alice, bob]) {
          const match = yield* newMatch(url, user.headers, { name: "Sam" })
          const [opener] = yield* generated(url, user, { matchId: match.id }, ["Coffee?"])
          if (opener === undefined) return yield* Effect.dieMessage("no opener")
          expect((yield* like(url, user, opener.id)).status).toBe(200)
        }
        expect(yield* matchRows(alice.id)).toHaveLength(1)
        expect(yield* openerRows(alice.id)).toHaveLength(1)
        expect(yield* aiCallRows(alice.id)).toHaveLength(1)
        expect(yield* usageRows(alice.id)).toEqual([{ kind: "openers", used: 1 }])

        const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
        expect(erased.status).toBe(204)
        expect(yield* matchRows(alice.id)).toEqual([])
        expect(yield* openerRows(alice.id)).toEqual([])
        expect(yield* aiCallRows(alice.id)).toEqual([])
        expect(yield* usageRows(alice.id)).toEqual([])
        expect(yield* matchRows(bob.id)).toHaveLength(1)
        expect(yield* usageRows(bob.id)).toEqual([{ kind: "openers", used: 1 }])
        expect(yield* openerRows(bob.id)).toHaveLength(1)
        expect(yield* aiCallRows(bob.id)).toHaveLength(1)
      })
    )
  })
})
