/**
 * Issue #16, rough edges of the contract: a dislike can be cleared (REST, RPC), owner-scoped and
 * idempotent; a validation message says what is wrong once (REST and RPC alike). Rows are
 * written with SQL: no AI provider is involved.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import { sql, TestDb } from "../../support/database.ts"
import { failure, http, postJson } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

/** An opener and a completed session with one suggestion, owned by `userId`; ids are path-safe. */
const seed = (userId: string) =>
  Effect.gen(function* () {
    const tag = randomBytes(6).toString("hex")
    const ids = { opener: `o${tag}`, session: `s${tag}`, suggestion: `g${tag}` }
    yield* sql(
      `INSERT INTO magic_openers (id, user_id, batch_id, position, text, tone, language, prompt_version, provider, model)
       VALUES ($1, $2, $3, 0, 'Coffee or tea?', 'playful', 'en', 'v1', 'local', 'local-1')`,
      [ids.opener, userId, `b${tag}`]
    )
    yield* sql(
      `INSERT INTO sessions (id, user_id, status, tone, language, updated_at, completed_at)
       VALUES ($1, $2, 'completed', 'witty', 'en', now(), now())`,
      [ids.session, userId]
    )
    yield* sql(
      `INSERT INTO suggestions (id, session_id, batch, position, text, tone, prompt_version, provider, model)
       VALUES ($1, $2, 0, 0, 'Coffee sounds great', 'witty', 'v1', 'local', 'local-1')`,
      [ids.suggestion, ids.session]
    )
    return ids
  })

type FeedbackRow = {
  readonly feedback: string | null
  readonly dislike_reason: string | null
  readonly feedback_at: Date | null
}

/** The opener's and the suggestion's feedback endpoints, and how to read their rows. */
const targets = (ids: { opener: string; session: string; suggestion: string }) =>
  [
    {
      id: ids.opener,
      path: `/api/v1/magic-openers/${ids.opener}`,
      notFound: failure("NOT_FOUND", "Opener not found"),
      row: sql<FeedbackRow>("SELECT feedback, dislike_reason, feedback_at FROM magic_openers WHERE id = $1", [
        ids.opener
      ])
    },
    {
      id: ids.suggestion,
      path: `/api/v1/sessions/${ids.session}/suggestions/${ids.suggestion}`,
      notFound: failure("NOT_FOUND", "Suggestion not found"),
      row: sql<FeedbackRow>("SELECT feedback, dislike_reason, feedback_at FROM suggestions WHERE id = $1", [
        ids.suggestion
      ])
    }
  ] as const

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("rough edges of issue #16", (it) => {
  describe("clearing a dislike", () => {
    it.effect("DELETE …/dislike clears it and its reason (idempotent); a like stays; another user's id is 404", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const ids = yield* seed(alice.id)
        for (const target of targets(ids)) {
          const disliked = yield* postJson(
            `${url}${target.path}/dislike`,
            JSON.stringify({ reason: "too cheesy" }),
            alice.headers
          )
          expect(disliked.status, target.path).toBe(200)
          expect(disliked.body).toMatchObject({ data: { feedback: "disliked", dislikeReason: "too cheesy" } })

          // Another user's id answers as a missing one, and changes nothing.
          const stolen = yield* http(`${url}${target.path}/dislike`, { method: "DELETE", headers: bob.headers })
          expect(stolen.status, target.path).toBe(404)
          expect(stolen.body).toEqual(target.notFound)
          expect(yield* target.row).toEqual([
            { feedback: "disliked", dislike_reason: "too cheesy", feedback_at: expect.any(Date) }
          ])

          const cleared = yield* http(`${url}${target.path}/dislike`, { method: "DELETE", headers: alice.headers })
          expect(cleared.status, target.path).toBe(200)
          expect(cleared.body).toMatchObject({
            success: true,
            data: { id: target.id, feedback: null, dislikeReason: null }
          })
          expect(yield* target.row).toEqual([{ feedback: null, dislike_reason: null, feedback_at: null }])
          const again = yield* http(`${url}${target.path}/dislike`, { method: "DELETE", headers: alice.headers })
          expect(again.status).toBe(200)
          expect(again.body).toEqual(cleared.body)

          // Clearing a dislike never clears a like.
          const liked = yield* http(`${url}${target.path}/like`, { method: "POST", headers: alice.headers })
          expect(liked.status).toBe(200)
          const kept = yield* http(`${url}${target.path}/dislike`, { method: "DELETE", headers: alice.headers })
          expect(kept.status).toBe(200)
          expect(kept.body).toEqual(liked.body)
          expect(kept.body).toMatchObject({ data: { feedback: "liked" } })
        }
      })
    )

    it.effect("a missing id is 404; both DELETEs are in the OpenAPI document (200 and 404)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const ids = yield* seed(alice.id)
        for (const target of targets({ ...ids, opener: "cmissing0", suggestion: "cmissing0" })) {
          const res = yield* http(`${url}${target.path}/dislike`, { method: "DELETE", headers: alice.headers })
          expect(res.status, target.path).toBe(404)
          expect(res.body).toEqual(target.notFound)
        }
        const doc = (yield* http(`${url}/openapi.json`)).body as {
          paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
        }
        for (const path of [
          "/api/v1/magic-openers/{openerId}/dislike",
          "/api/v1/sessions/{sessionId}/suggestions/{suggestionId}/dislike"
        ]) {
          const operation = doc.paths[path]?.["delete"]
          expect(operation, path).toBeDefined()
          expect(Object.keys(operation?.responses ?? {})).toEqual(expect.arrayContaining(["200", "404"]))
        }
      })
    )

    it.effect("rpc: openers.undislike clears a dislike (idempotent); another user's opener is NotFound", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const ids = yield* seed(alice.id)
        const asUser = (token: string) => WingmateRpcClient.http({ baseUrl: url, token })
        const disliked = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          rpc.openers.dislike({ openerId: ids.opener, reason: "meh" })
        ).pipe(Effect.provide(asUser(alice.token)))
        expect(disliked).toMatchObject({ feedback: "disliked", dislikeReason: "meh" })
        const stolen = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          Effect.flip(rpc.openers.undislike({ openerId: ids.opener }))
        ).pipe(Effect.provide(asUser(bob.token)))
        expect(stolen).toMatchObject({ _tag: "NotFound" })
        const cleared = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          Effect.zip(rpc.openers.undislike({ openerId: ids.opener }), rpc.openers.undislike({ openerId: ids.opener }))
        ).pipe(Effect.provide(asUser(alice.token)))
        expect(cleared[0]).toEqual({ ...disliked, feedback: null, dislikeReason: null })
        expect(cleared[1]).toEqual(cleared[0])
      })
    )
  })
  describe("validation messages", () => {
    it.effect("REST and RPC say each wrong field once, with the same words", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const ids = yield* seed(alice.id)
        const rest = yield* http(`${url}/api/v1/sessions/${ids.session}/transcript`, {
          method: "PATCH",
          headers: { ...alice.headers, "content-type": "application/json" },
          body: JSON.stringify({ messages: [{ position: 0, sender: "bot" }] })
        })
        expect(rest.status).toBe(400)
        expect(rest.body).toEqual(
          failure("VALIDATION_ERROR", "The request is invalid: see details.issues", {
            issues: [{ path: "messages.0.sender", message: 'Expected "me", "them" or "system", actual "bot"' }]
          })
        )
        const limit = yield* http(`${url}/api/v1/sessions?limit=6.5`, { headers: alice.headers })
        expect(limit.body).toEqual(
          failure("VALIDATION_ERROR", "The request is invalid: see details.issues", {
            issues: [{ path: "limit", message: "Expected an integer, actual 6.5" }]
          })
        )

        const request = (id: string, tag: string, payload: unknown) =>
          JSON.stringify({ _tag: "Request", id, tag, payload, headers: [["authorization", `Bearer ${alice.token}`]] })
        const rpc = yield* http(`${url}/rpc`, {
          method: "POST",
          headers: { "content-type": "application/ndjson" },
          body:
            [
              request("1", "openers.list", { limit: 6.5 }),
              request("2", "openers.generate", { profile: { name: "Sam", age: 30 }, count: "3" })
            ].join("\n") + "\n"
        })
        const defects = new Map(
          rpc.text
            .split("\n")
            .filter((line) => line !== "")
            .map((line) => {
              const message = JSON.parse(line) as { requestId: string; exit: { cause: { defect: unknown } } }
              return [message.requestId, message.exit.cause.defect] as const
            })
        )
        expect(defects.get("1")).toBe("The payload is invalid: limit: Expected an integer, actual 6.5")
        expect(defects.get("2")).toBe(
          'The payload is invalid: profile.age: is unexpected, expected: "name" | "bio" | "interests"; ' +
            'count: Expected number, actual "3"'
        )
      })
    )
  })
})
