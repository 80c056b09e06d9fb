/**
 * The typed REST client (src/client/rest-client.ts, `HttpApiClient` of `WingmateApi`) against the
 * real server and PostgreSQL: the README's flows (the caller, matches listed, an upload created and
 * sent, a session created and read, openers generated and liked), decoded by the contract's own
 * schemas, and failures as their tagged errors.
 */
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { WingmateRestClient } from "../../../src/client/rest-client.ts"
import { NotFound, Unauthorized, UnsupportedMediaType } from "../../../src/domain/errors.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql, TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { sendBytes } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"

/** Runs `f` with the typed REST client of the test server, as the holder of `token` (none: anonymous). */
const as =
  (url: string, token: string | undefined) =>
  <A, E>(f: (api: WingmateRestClient["Type"]) => Effect.Effect<A, E>) =>
    Effect.flatMap(WingmateRestClient, f).pipe(Effect.provide(WingmateRestClient.layer({ baseUrl: url, token })))

layer(testServer({ db: TestDb() }), { timeout: 60_000, excludeTestServices: true })("rest client", (it) => {
  it.effect("users, matches, uploads and sessions through the typed client, decoded by the contract", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const asAlice = as(url, alice.token)

      const me = yield* asAlice((api) => api.users.me())
      expect(me).toMatchObject({ id: alice.id, firstName: "alice" })
      expect(me.createdAt).toBeInstanceOf(Date)

      const sam = yield* asAlice((api) => api.matches.create({ payload: { name: "Sam", interests: ["chess"] } }))
      const kim = yield* asAlice((api) => api.matches.create({ payload: { name: "Kim" } }))
      const page = yield* asAlice((api) => api.matches.list({ urlParams: { limit: 1 } }))
      expect(page.items.map((match) => match.id)).toEqual([kim.id])
      const cursor = page.nextCursor ?? ""
      const rest = yield* asAlice((api) => api.matches.list({ urlParams: { limit: 1, cursor } }))
      expect(rest).toEqual({ items: [sam], nextCursor: null })
      const updated = yield* asAlice((api) =>
        api.matches.update({ path: { matchId: sam.id }, payload: { notes: "chess club" } })
      )
      expect(updated).toMatchObject({ id: sam.id, notes: "chess club" })

      const bytes = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* asAlice((api) =>
        api.uploads.create({ payload: { contentType: "image/png", contentLength: bytes.length, purpose: "session" } })
      )
      expect(ticket.expiresAt).toBeInstanceOf(Date)
      const put = yield* sendBytes({ ...ticket, expiresAt: ticket.expiresAt.toISOString() }, bytes)
      expect(put.status).toBe(200)
      const upload = yield* asAlice((api) => api.uploads.get({ path: { uploadId: ticket.uploadId } }))
      expect(upload).toMatchObject({ id: ticket.uploadId, status: "verified" })

      const created = yield* asAlice((api) =>
        api.sessions.create({ payload: { uploadIds: [ticket.uploadId], matchId: sam.id, tone: "witty" } })
      )
      expect(created).toMatchObject({ status: "queued", tone: "witty", matchId: sam.id })
      const session = yield* asAlice((api) => api.sessions.get({ path: { sessionId: created.id } }))
      expect(session).toMatchObject({ id: created.id, status: "queued", imageCount: 1 })
      expect(session.createdAt).toBeInstanceOf(Date)
      const listed = yield* asAlice((api) => api.sessions.list({ urlParams: { matchId: sam.id } }))
      expect(listed.items.map((item) => item.id)).toEqual([created.id])

      // The JSON answer of a streamed operation (the client never asks for text/event-stream).
      const generated = yield* asAlice((api) => api.openers.generate({ payload: { matchId: sam.id, count: 1 } }))
      expect(generated.openers).toHaveLength(1)
      const [opener] = generated.openers
      if (opener === undefined) return yield* Effect.dieMessage("an opener expected")
      const liked = yield* asAlice((api) => api.openers.like({ path: { openerId: opener.id } }))
      expect(liked).toMatchObject({ id: opener.id, feedback: "liked" })
      const disliked = yield* asAlice((api) => api.openers.dislike({ path: { openerId: opener.id }, payload: null }))
      expect(disliked).toMatchObject({ id: opener.id, feedback: "disliked", dislikeReason: null })

      yield* asAlice((api) => api.matches.delete({ path: { matchId: kim.id } }))
      expect(yield* sql("SELECT name FROM matches WHERE user_id = $1", [alice.id])).toEqual([{ name: "Sam" }])
    })
  )

  it.effect("failures come back as their tagged errors", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const match = yield* as(url, alice.token)((api) => api.matches.create({ payload: { name: "Sam" } }))

      // Another user's match answers exactly like a missing one.
      const foreign = yield* as(url, bob.token)((api) => Effect.flip(api.matches.get({ path: { matchId: match.id } })))
      const missing = yield* as(url, bob.token)((api) => Effect.flip(api.matches.get({ path: { matchId: "nosuch" } })))
      expect(foreign).toBeInstanceOf(NotFound)
      expect(foreign).toEqual(missing)

      const anonymous = yield* as(url, undefined)((api) => Effect.flip(api.users.me()))
      expect(anonymous).toBeInstanceOf(Unauthorized)
      expect(anonymous).toMatchObject({ details: { reason: "missing-token" } })
      const refused = yield* as(url, "not-a-jwt")((api) => Effect.flip(api.matches.list({ urlParams: {} })))
      expect(refused).toMatchObject({ _tag: "Unauthorized", details: { reason: "malformed-token" } })

      const heic = yield* as(
        url,
        alice.token
      )((api) =>
        Effect.flip(
          api.uploads.create({ payload: { contentType: "image/heic", contentLength: 10, purpose: "session" } })
        )
      )
      expect(heic).toBeInstanceOf(UnsupportedMediaType)
      expect(heic).toMatchObject({ details: { contentType: "image/heic" } })

      // A cursor that is not a nextCursor: the server's 400 VALIDATION_ERROR, decoded with its issues.
      const badCursor = yield* as(
        url,
        alice.token
      )((api) => Effect.flip(api.matches.list({ urlParams: { cursor: "nope" } })))
      expect(badCursor).toBeInstanceOf(HttpApiDecodeError)
      expect(badCursor).toMatchObject({ issues: [{ path: ["cursor"] }] })
    })
  )
})
