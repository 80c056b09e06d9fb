/**
 * The procedures that make every HttpApi operation reachable through RPC (test/unit/domain/
 * rpc-coverage.test.ts maps them), through the typed client on the real server and PostgreSQL:
 * the account (update, export, erase), matches, uploads, and the rest of sessions (list, transcript
 * fixes, suggestion feedback, cancel, delete), with ownership and their tagged failures.
 * In-process queue and progress bus, the worker in the same process, local OCR and provider.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, type Layer, Stream } from "effect"
import { beforeAll } from "vitest"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import {
  BadRequest,
  NotFound,
  Unauthorized,
  UnsupportedMediaType,
  ValidationError
} from "../../../src/domain/errors.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { sendBytes } from "../../support/uploads.ts"
import { eraseElsewhere, twoUsers } from "../../support/users.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

type Transport = "http" | "webSocket"

const clientOf = (transport: Transport, url: string, token: string): Layer.Layer<WingmateRpcClient> =>
  transport === "http"
    ? WingmateRpcClient.http({ baseUrl: url, token })
    : WingmateRpcClient.webSocket({ baseUrl: url, token })

/** Runs `f` with a typed client of the test server, over `transport`, as the holder of `token`. */
const as =
  (transport: Transport, url: string, token: string) =>
  <A, E>(f: (rpc: WingmateRpcClient["Type"]) => Effect.Effect<A, E>) =>
    Effect.flatMap(WingmateRpcClient, f).pipe(Effect.provide(clientOf(transport, url, token)))

layer(testServer({ db: TestDb(), consumer: true }), { timeout: 120_000, excludeTestServices: true })(
  "rpc: every operation",
  (it) => {
    for (const transport of ["http", "webSocket"] as const) {
      it.effect(`${transport}: matches.create, list, get, update, delete; another user's match is NotFound`, () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice, bob } = yield* twoUsers(url)
          const asAlice = as(transport, url, alice.token)
          const asBob = as(transport, url, bob.token)

          const created = yield* asAlice((rpc) =>
            rpc.matches.create({ name: "Sam", bio: "Chess and dogs", interests: ["chess"] })
          )
          expect(created).toMatchObject({ name: "Sam", bio: "Chess and dogs", interests: ["chess"], notes: null })
          expect(created.createdAt).toBeInstanceOf(Date)
          const other = yield* asAlice((rpc) => rpc.matches.create({ name: "Kim" }))

          const page = yield* asAlice((rpc) => rpc.matches.list({ limit: 1 }))
          expect(page.items.map((match) => match.id)).toEqual([other.id])
          expect(page.nextCursor).toEqual(expect.any(String))
          const rest = yield* asAlice((rpc) => rpc.matches.list({ limit: 1, cursor: page.nextCursor ?? "" }))
          expect(rest).toEqual({ items: [created], nextCursor: null })
          const badCursor = yield* asAlice((rpc) => Effect.flip(rpc.matches.list({ cursor: "nope" })))
          expect(badCursor).toBeInstanceOf(ValidationError)

          expect(yield* asAlice((rpc) => rpc.matches.get({ matchId: created.id }))).toEqual(created)
          const updated = yield* asAlice((rpc) =>
            rpc.matches.update({ matchId: created.id, bio: null, notes: "met at the chess club" })
          )
          expect(updated).toMatchObject({ id: created.id, name: "Sam", bio: null, notes: "met at the chess club" })
          const minor = yield* asAlice((rpc) =>
            Effect.flip(rpc.matches.update({ matchId: created.id, bio: "I am 16" }))
          )
          expect(minor).toMatchObject({ _tag: "SafetyBlocked" })

          // Bob: exactly like a missing match, and nothing of alice's changes.
          const foreign = yield* asBob((rpc) =>
            Effect.all([
              Effect.flip(rpc.matches.get({ matchId: created.id })),
              Effect.flip(rpc.matches.update({ matchId: created.id, name: "Bob's" })),
              Effect.flip(rpc.matches.delete({ matchId: created.id })),
              Effect.flip(rpc.matches.get({ matchId: "nosuchmatch" }))
            ])
          )
          for (const failure of foreign) {
            expect(failure).toBeInstanceOf(NotFound)
            expect(failure).toEqual(foreign[3])
          }
          expect((yield* asBob((rpc) => rpc.matches.list({}))).items).toEqual([])

          yield* asAlice((rpc) => rpc.matches.delete({ matchId: created.id }))
          expect(yield* asAlice((rpc) => Effect.flip(rpc.matches.get({ matchId: created.id })))).toBeInstanceOf(
            NotFound
          )
          expect(yield* sql("SELECT name FROM matches WHERE user_id = $1", [alice.id])).toEqual([{ name: "Kim" }])
        })
      )
    }

    it.effect(
      "uploads.create → PUT → uploads.get verified; refused types; sessions list, fix, feedback, cancel, delete",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice, bob } = yield* twoUsers(url)
          const asAlice = as("http", url, alice.token)
          const asBob = as("webSocket", url, bob.token)

          const ticket = yield* asAlice((rpc) =>
            rpc.uploads.create({ contentType: "image/png", contentLength: screenshot.length, purpose: "session" })
          )
          expect(ticket).toMatchObject({ method: "PUT", uploadId: expect.any(String) })
          expect(ticket.expiresAt).toBeInstanceOf(Date)
          const pending = yield* asAlice((rpc) => rpc.uploads.get({ uploadId: ticket.uploadId }))
          expect(pending).toMatchObject({ id: ticket.uploadId, status: "pending", purpose: "session" })
          const put = yield* sendBytes(
            { ...ticket, expiresAt: ticket.expiresAt.toISOString(), headers: { ...ticket.headers } },
            screenshot
          )
          expect(put.status).toBe(200)
          const verified = yield* asAlice((rpc) => rpc.uploads.get({ uploadId: ticket.uploadId }))
          expect(verified).toMatchObject({ status: "verified", contentLength: screenshot.length })
          expect(yield* asBob((rpc) => Effect.flip(rpc.uploads.get({ uploadId: ticket.uploadId })))).toBeInstanceOf(
            NotFound
          )
          const heic = yield* asAlice((rpc) =>
            Effect.flip(rpc.uploads.create({ contentType: "image/heic", contentLength: 10, purpose: "session" }))
          )
          expect(heic).toBeInstanceOf(UnsupportedMediaType)
          expect(heic).toMatchObject({ details: { contentType: "image/heic" } })

          const match = yield* asAlice((rpc) => rpc.matches.create({ name: "Ana" }))
          const created = yield* asAlice((rpc) =>
            rpc.sessions.create({ uploadIds: [ticket.uploadId], matchId: match.id, tone: "witty" })
          )
          const followed = yield* asAlice((rpc) =>
            Stream.runCollect(rpc.sessions.follow({ sessionId: created.id, afterSeq: 0 }))
          ).pipe(Effect.map(Chunk.toReadonlyArray))
          expect(followed.at(-1)).toMatchObject({ _tag: "Event", event: { _tag: "Completed" } })

          const listed = yield* asAlice((rpc) => rpc.sessions.list({ matchId: match.id }))
          expect(listed.items.map((session) => session.id)).toEqual([created.id])
          expect(listed.items[0]).toMatchObject({ status: "completed", matchId: match.id, imageCount: 1 })
          expect(yield* asAlice((rpc) => rpc.sessions.list({ matchId: "nosuchmatch" }))).toEqual({
            items: [],
            nextCursor: null
          })
          expect((yield* asBob((rpc) => rpc.sessions.list({}))).items).toEqual([])

          // The transcript's fixes, by position; a position it does not have is BadRequest.
          const fixed = yield* asAlice((rpc) =>
            rpc.sessions.patchTranscript({
              sessionId: created.id,
              messages: [{ position: 0, sender: "them", text: "Hey!" }]
            })
          )
          expect(fixed.transcript[0]).toMatchObject({ sender: "them", text: "Hey!", confidence: 1 })
          const nowhere = yield* asAlice((rpc) =>
            Effect.flip(
              rpc.sessions.patchTranscript({ sessionId: created.id, messages: [{ position: 999, text: "x" }] })
            )
          )
          expect(nowhere).toBeInstanceOf(BadRequest)
          expect(nowhere).toMatchObject({ details: { positions: [999] } })

          // Feedback on a suggestion.
          const [first, second] = fixed.suggestions
          if (first === undefined || second === undefined) return yield* Effect.dieMessage("suggestions expected")
          const liked = yield* asAlice((rpc) => rpc.sessions.like({ sessionId: created.id, suggestionId: first.id }))
          expect(liked).toMatchObject({ id: first.id, feedback: "liked" })
          const unliked = yield* asAlice((rpc) =>
            rpc.sessions.unlike({ sessionId: created.id, suggestionId: first.id })
          )
          expect(unliked).toMatchObject({ id: first.id, feedback: null })
          const disliked = yield* asAlice((rpc) =>
            rpc.sessions.dislike({ sessionId: created.id, suggestionId: second.id, reason: "too long" })
          )
          expect(disliked).toMatchObject({ id: second.id, feedback: "disliked", dislikeReason: "too long" })
          expect(yield* sql("SELECT feedback, dislike_reason FROM suggestions WHERE id = $1", [second.id])).toEqual([
            { feedback: "disliked", dislike_reason: "too long" }
          ])

          // Bob: every procedure on alice's session is NotFound, and changes nothing.
          const foreign = yield* asBob((rpc) =>
            Effect.all([
              Effect.flip(
                rpc.sessions.patchTranscript({ sessionId: created.id, messages: [{ position: 0, text: "x" }] })
              ),
              Effect.flip(rpc.sessions.like({ sessionId: created.id, suggestionId: first.id })),
              Effect.flip(rpc.sessions.unlike({ sessionId: created.id, suggestionId: second.id })),
              Effect.flip(rpc.sessions.dislike({ sessionId: created.id, suggestionId: first.id })),
              Effect.flip(rpc.sessions.cancel({ sessionId: created.id })),
              Effect.flip(rpc.sessions.delete({ sessionId: created.id }))
            ])
          )
          for (const failure of foreign) expect(failure).toBeInstanceOf(NotFound)

          // Cancelling an ended session leaves it as it was; deleting removes it.
          const cancelled = yield* asAlice((rpc) => rpc.sessions.cancel({ sessionId: created.id }))
          expect(cancelled).toMatchObject({ id: created.id, status: "completed" })
          yield* asAlice((rpc) => rpc.sessions.delete({ sessionId: created.id }))
          expect(yield* asAlice((rpc) => Effect.flip(rpc.sessions.get({ sessionId: created.id })))).toBeInstanceOf(
            NotFound
          )
          expect(yield* sql("SELECT count(*)::int AS n FROM sessions WHERE id = $1", [created.id])).toEqual([{ n: 0 }])
        })
    )

    it.effect("users.updateMe, exportMe, then eraseMe (twice, as DELETE /users/me); the erased token is refused", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        for (const transport of ["http", "webSocket"] as const) {
          const updated = yield* as(
            transport,
            url,
            alice.token
          )((rpc) => rpc.users.updateMe({ firstName: `Alicia ${transport}`, defaultTone: "witty", lastName: null }))
          expect(updated).toMatchObject({ id: alice.id, firstName: `Alicia ${transport}`, defaultTone: "witty" })
        }
        expect(yield* sql("SELECT first_name, default_tone FROM users WHERE id = $1", [alice.id])).toEqual([
          { first_name: "Alicia webSocket", default_tone: "witty" }
        ])
        yield* as("http", url, alice.token)((rpc) => rpc.matches.create({ name: "Sam" }))
        const exported = yield* as("webSocket", url, alice.token)((rpc) => rpc.users.exportMe())
        expect(exported.profile.id).toBe(alice.id)
        expect(exported.matches.map((match) => match.name)).toEqual(["Sam"])
        expect(exported.exportedAt).toBeInstanceOf(Date)

        yield* as("http", url, alice.token)((rpc) => rpc.users.eraseMe())
        expect(yield* sql("SELECT count(*)::int AS n FROM users WHERE id = $1", [alice.id])).toEqual([{ n: 0 }])
        // Again: the account is gone, the call still succeeds (idempotent, as the REST route).
        yield* as("webSocket", url, alice.token)((rpc) => rpc.users.eraseMe())
        const refused = yield* as("http", url, alice.token)((rpc) => Effect.flip(rpc.users.me()))
        expect(refused).toBeInstanceOf(Unauthorized)
        expect(refused).toMatchObject({ details: { reason: "account-erased" } })
        // Without a token, erasure is refused like any call.
        const anonymous = yield* Effect.flatMap(WingmateRpcClient, (rpc) => Effect.flip(rpc.users.eraseMe())).pipe(
          Effect.provide(WingmateRpcClient.http({ baseUrl: url }))
        )
        expect(anonymous).toMatchObject({ _tag: "Unauthorized", details: { reason: "missing-token" } })
        expect((yield* as("http", url, bob.token)((rpc) => rpc.users.me())).id).toBe(bob.id)
      })
    )

    it.effect(
      "users.updateMe where the token is still mapped but another instance erased the account: Unauthorized, not a defect",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          // This instance maps the token (its cache); another one wrote the tombstone and deleted the row.
          yield* eraseElsewhere(alice)
          const refused = yield* as(
            "http",
            url,
            alice.token
          )((rpc) => Effect.flip(rpc.users.updateMe({ firstName: "Ghost" })))
          expect(refused).toBeInstanceOf(Unauthorized)
          expect(refused).toMatchObject({ details: { reason: "account-erased" } })
          expect(yield* sql("SELECT count(*)::int AS n FROM users WHERE id = $1", [alice.id])).toEqual([{ n: 0 }])
        })
    )
  }
)
