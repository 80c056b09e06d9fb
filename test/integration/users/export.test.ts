/**
 * `GET /api/v1/users/me/export` against the real PostgreSQL: the caller's data (profile, matches,
 * openers with feedback, sessions with transcripts and suggestions with feedback, AI usage) and
 * nobody else's; 401 without a token; its own per-user limit (RATE_LIMIT_EXPORT_USER); typed in
 * the OpenAPI document.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser, twoUsers } from "../../support/users.ts"

/** A user's rows, written straight to the database: what the export must give back, and only to them. */
const seed = (userId: string, label: string) =>
  Effect.gen(function* () {
    const tag = `${label}-${randomBytes(4).toString("hex")}`
    const ids = {
      match: `m-${tag}`,
      liked: `ol-${tag}`,
      disliked: `od-${tag}`,
      session: `s-${tag}`,
      likedSuggestion: `sl-${tag}`,
      dislikedSuggestion: `sd-${tag}`
    }
    yield* sql(`INSERT INTO matches (id, user_id, name, bio, updated_at) VALUES ($1, $2, $3, $4, now())`, [
      ids.match,
      userId,
      `Sam of ${tag}`,
      `Climbs on weekends (${tag})`
    ])
    const opener = `INSERT INTO magic_openers (id, user_id, match_id, batch_id, position, text, tone, language,
        prompt_version, provider, model, feedback, dislike_reason, feedback_at)
      VALUES ($1, $2, $3, $4, $5, $6, 'playful', 'en', 'v1', 'local', 'local-1', $7, $8, now())`
    yield* sql(opener, [ids.liked, userId, ids.match, `b-${tag}`, 0, `Opener one ${tag}`, "liked", null])
    yield* sql(opener, [ids.disliked, userId, ids.match, `b-${tag}`, 1, `Opener two ${tag}`, "disliked", "too cheesy"])
    yield* sql(
      `INSERT INTO sessions (id, user_id, match_id, status, tone, language, context, updated_at, completed_at)
       VALUES ($1, $2, $3, 'completed', 'witty', 'en', $4, now(), now())`,
      [ids.session, userId, ids.match, `Context ${tag}`]
    )
    for (const [position, sender, text] of [
      [0, "them", `Hi from ${tag}`],
      [1, "me", `Hello back ${tag}`]
    ] as const) {
      yield* sql(
        `INSERT INTO transcript_messages (id, session_id, position, sender, text, confidence)
         VALUES ($1, $2, $3, $4, $5, 0.9)`,
        [`t${position}-${tag}`, ids.session, position, sender, text]
      )
    }
    const suggestion = `INSERT INTO suggestions (id, session_id, batch, position, text, tone, prompt_version,
        provider, model, feedback, dislike_reason, feedback_at)
      VALUES ($1, $2, 0, $3, $4, 'witty', 'v1', 'local', 'local-1', $5, $6, now())`
    yield* sql(suggestion, [ids.likedSuggestion, ids.session, 0, `Reply one ${tag}`, "liked", null])
    yield* sql(suggestion, [ids.dislikedSuggestion, ids.session, 1, `Reply two ${tag}`, "disliked", "too long"])
    const call = `INSERT INTO ai_calls (id, user_id, feature, provider, model, input_tokens, output_tokens,
        cost_micros, latency_ms, outcome) VALUES ($1, $2, $3, 'openai', 'gpt-4o', $4, $5, $6, 120, 'ok')`
    yield* sql(call, [`a1-${tag}`, userId, "openers", 100, 40, 900])
    yield* sql(call, [`a2-${tag}`, userId, "sessions.ocr", 800, 60, 2500])
    return { tag, ids }
  })

const exportOf = (url: string, headers: Record<string, string>) => http(`${url}/api/v1/users/me/export`, { headers })

interface WireExport {
  readonly profile: { readonly id: string }
  readonly matches: ReadonlyArray<{ readonly id: string; readonly name: string; readonly bio: string | null }>
  readonly openers: ReadonlyArray<{
    readonly id: string
    readonly text: string
    readonly feedback: string | null
    readonly dislikeReason: string | null
  }>
  readonly sessions: ReadonlyArray<{
    readonly id: string
    readonly status: string
    readonly context: string | null
    readonly transcript: ReadonlyArray<{ readonly sender: string; readonly text: string }>
    readonly suggestions: ReadonlyArray<{
      readonly id: string
      readonly feedback: string | null
      readonly dislikeReason: string | null
    }>
  }>
  readonly aiUsage: ReadonlyArray<Record<string, unknown>>
  readonly truncated: ReadonlyArray<string>
}

layer(
  testServer({
    db: TestDb(),
    // The REST limits stay far away; the export's own rule is small enough to reach.
    config: { RATE_LIMIT_ENABLED: "true", RATE_LIMIT_EXPORT_USER: "3/3600s" }
  }),
  { timeout: 60_000 }
)("users: data export", (it) => {
  it.effect("the caller's profile, matches, openers, sessions and AI usage; none of another user's", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const mine = yield* seed(alice.id, "alice")
      const theirs = yield* seed(bob.id, "bob")

      const res = yield* exportOf(url, alice.headers)
      expect(res.status).toBe(200)
      expect(res.headers.get("cache-control")).toContain("no-store")
      const body = res.body as { success: boolean; data: WireExport }
      expect(body.success).toBe(true)
      const data = body.data
      expect(data.profile.id).toBe(alice.id)
      expect(data.matches.map((match) => [match.id, match.name, match.bio])).toEqual([
        [mine.ids.match, `Sam of ${mine.tag}`, `Climbs on weekends (${mine.tag})`]
      ])
      expect(
        [...data.openers]
          .sort((a, b) => a.text.localeCompare(b.text))
          .map((opener) => [opener.id, opener.feedback, opener.dislikeReason])
      ).toEqual([
        [mine.ids.liked, "liked", null],
        [mine.ids.disliked, "disliked", "too cheesy"]
      ])
      expect(data.sessions).toHaveLength(1)
      const [session] = data.sessions
      expect(session?.id).toBe(mine.ids.session)
      expect(session?.status).toBe("completed")
      expect(session?.context).toBe(`Context ${mine.tag}`)
      expect(session?.transcript.map((message) => [message.sender, message.text])).toEqual([
        ["them", `Hi from ${mine.tag}`],
        ["me", `Hello back ${mine.tag}`]
      ])
      expect(
        session?.suggestions.map((suggestion) => [suggestion.id, suggestion.feedback, suggestion.dislikeReason])
      ).toEqual([
        [mine.ids.likedSuggestion, "liked", null],
        [mine.ids.dislikedSuggestion, "disliked", "too long"]
      ])
      // The ledger's rows, exactly these fields: no prompt, no id of anything else.
      expect([...data.aiUsage].sort((a, b) => String(a["feature"]).localeCompare(String(b["feature"])))).toEqual([
        {
          feature: "openers",
          provider: "openai",
          model: "gpt-4o",
          inputTokens: 100,
          outputTokens: 40,
          costMicros: 900,
          latencyMs: 120,
          outcome: "ok",
          createdAt: expect.any(String)
        },
        {
          feature: "sessions.ocr",
          provider: "openai",
          model: "gpt-4o",
          inputTokens: 800,
          outputTokens: 60,
          costMicros: 2500,
          latencyMs: 120,
          outcome: "ok",
          createdAt: expect.any(String)
        }
      ])
      expect(data.truncated).toEqual([])
      // Nothing of Bob's, not even an id.
      expect(res.text).not.toContain(theirs.tag)
      expect(res.text).not.toContain(bob.id)
    })
  )

  it.effect("401 without a token", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* exportOf(url, {})
      expect(res.status).toBe(401)
      expect(res.body).toMatchObject({ success: false, error: { code: "UNAUTHORIZED" } })
    })
  )

  it.effect("past RATE_LIMIT_EXPORT_USER: 429 RATE_LIMITED with Retry-After, for that user only", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const carol = yield* provisionUser(url, "carol")
      const dave = yield* provisionUser(url, "dave")
      for (let i = 0; i < 3; i++) expect((yield* exportOf(url, carol.headers)).status).toBe(200)
      const refused = yield* exportOf(url, carol.headers)
      expect(refused.status).toBe(429)
      expect(refused.body).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } })
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
      // Other requests of the same user, and other users' exports, are not held up by it.
      expect((yield* http(`${url}/api/v1/users/me`, { headers: carol.headers })).status).toBe(200)
      expect((yield* exportOf(url, dave.headers)).status).toBe(200)
    })
  )

  it.effect("the OpenAPI document types the export's answer", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* http(`${url}/openapi.json`)
      expect(res.status).toBe(200)
      const doc = res.body as {
        paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
        components: { schemas: Record<string, { properties?: Record<string, unknown> }> }
      }
      const operation = doc.paths["/api/v1/users/me/export"]?.["get"]
      expect(Object.keys(operation?.responses ?? {})).toEqual(expect.arrayContaining(["200", "401", "429"]))
      expect(Object.keys(doc.components.schemas["UserExport"]?.properties ?? {})).toEqual(
        expect.arrayContaining(["profile", "matches", "openers", "sessions", "aiUsage", "truncated"])
      )
    })
  )
})
