/**
 * Sessions through the typed RPC client: created with `sessions.create`, followed to `Completed`
 * with `sessions.follow` (over HTTP NDJSON), resumed with `afterSeq` (over WebSocket) giving
 * exactly the events after it, regenerated as a stream; another user's session is NotFound.
 * In-process queue and progress bus, the worker in the same process, local OCR and provider.
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, Deferred, Effect, Fiber, Stream } from "effect"
import { beforeAll } from "vitest"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import { NotFound, Unauthorized } from "../../../src/domain/errors.ts"
import type { RegenerationEvent } from "../../../src/domain/rpc.ts"
import type { SessionStreamItem } from "../../../src/domain/sessions.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { uploadPng } from "../sessions/support.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) =>
  Effect.map(Stream.runCollect(stream), (chunk): ReadonlyArray<A> => Chunk.toReadonlyArray(chunk))

const eventTag = (item: SessionStreamItem) => (item._tag === "Event" ? item.event._tag : "Snapshot")

layer(testServer({ db: TestDb(), consumer: true }), { timeout: 120_000, excludeTestServices: true })(
  "rpc: sessions",
  (it) => {
    it.effect("create → follow to Completed → resume after a seq → regenerate; others get NotFound", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const asAlice = (transport: "http" | "webSocket") =>
          transport === "http"
            ? WingmateRpcClient.http({ baseUrl: url, token: alice.token })
            : WingmateRpcClient.webSocket({ baseUrl: url, token: alice.token })
        const uploadId = yield* uploadPng(url, alice.headers, screenshot)

        const created = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          rpc.sessions.create({ uploadIds: [uploadId], tone: "witty" })
        ).pipe(Effect.provide(asAlice("http")))
        expect(created).toMatchObject({ status: "queued", tone: "witty", transcript: [], suggestions: [] })
        expect(created.createdAt).toBeInstanceOf(Date)

        // From seq 0: every event, replayed then live, until the terminal one.
        const items = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          collect(rpc.sessions.follow({ sessionId: created.id, afterSeq: 0 }))
        ).pipe(Effect.provide(asAlice("http")))
        const tags = items.map(eventTag)
        expect(tags.at(-1)).toBe("Completed")
        expect(tags).not.toContain("Snapshot")
        expect(items.map((item) => item.seq)).toEqual(items.map((_, index) => index + 1))
        const transcriptAt = tags.indexOf("Transcript")
        expect(transcriptAt).toBeGreaterThan(-1)
        expect(tags.indexOf("Delta")).toBeGreaterThan(transcriptAt)
        expect(tags.filter((tag) => tag === "Suggestion")).toHaveLength(3)
        const transcriptItem = items[transcriptAt]
        const messages =
          transcriptItem?._tag === "Event" && transcriptItem.event._tag === "Transcript"
            ? transcriptItem.event.messages
            : []
        expect(messages.length).toBeGreaterThan(0)
        expect(messages.map((message) => message.position)).toEqual(messages.map((_, index) => index))

        // Resumed after the transcript's seq (over WebSocket): exactly what came after it.
        const after = items[transcriptAt]?.seq ?? 0
        const resumed = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          collect(rpc.sessions.follow({ sessionId: created.id, afterSeq: after }))
        ).pipe(Effect.provide(asAlice("webSocket")))
        expect(resumed).toEqual(items.filter((item) => item.seq > after))

        // Without afterSeq: the state so far as a snapshot, then the terminal event with its summary, and
        // the stream ends (the session is over).
        const late = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          collect(rpc.sessions.follow({ sessionId: created.id }))
        ).pipe(Effect.provide(asAlice("http")))
        expect(late).toEqual([
          { _tag: "Snapshot", seq: items.length, state: { status: "completed", phase: null, errorCode: null } },
          { ...items.at(-1), seq: items.length }
        ])

        const session = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          rpc.sessions.get({ sessionId: created.id })
        ).pipe(Effect.provide(asAlice("webSocket")))
        expect(session).toMatchObject({ id: created.id, status: "completed", errorCode: null })
        expect(session.suggestions).toHaveLength(3)
        const saved = items.flatMap((item) =>
          item._tag === "Event" && item.event._tag === "Suggestion" ? [item.event.suggestion] : []
        )
        expect(session.suggestions).toEqual(saved)

        // A new batch, streamed: deltas, its suggestions as saved, then Final with its number. The
        // local provider has five lines and three went to batch 0: two remain, never repeated.
        const regenerated = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          collect(rpc.sessions.regenerate({ sessionId: created.id, instruction: "shorter" }))
        ).pipe(Effect.provide(asAlice("webSocket")))
        const kinds = regenerated.map((event: RegenerationEvent) => event._tag)
        expect(kinds.filter((kind) => kind !== "Delta")).toEqual(["Suggestion", "Suggestion", "Final"])
        expect(regenerated.at(-1)).toEqual({ _tag: "Final", batch: 1 })
        const fresh = regenerated.flatMap((event) => (event._tag === "Suggestion" ? [event.suggestion] : []))
        for (const suggestion of fresh) {
          expect(suggestion).toMatchObject({ batch: 1, tone: "witty" })
          expect(saved.map((earlier) => earlier.text)).not.toContain(suggestion.text)
        }
        const rows = yield* sql("SELECT batch FROM suggestions WHERE session_id = $1 ORDER BY batch, position", [
          created.id
        ])
        expect(rows.map((row) => row["batch"])).toEqual([0, 0, 0, 1, 1])

        // Bob: exactly like a missing session, whichever procedure, whichever transport.
        for (const transport of ["http", "webSocket"] as const) {
          const asBob =
            transport === "http"
              ? WingmateRpcClient.http({ baseUrl: url, token: bob.token })
              : WingmateRpcClient.webSocket({ baseUrl: url, token: bob.token })
          const failures = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
            Effect.all([
              Effect.flip(rpc.sessions.get({ sessionId: created.id })),
              Effect.flip(collect(rpc.sessions.follow({ sessionId: created.id }))),
              Effect.flip(collect(rpc.sessions.regenerate({ sessionId: created.id }))),
              Effect.flip(rpc.sessions.get({ sessionId: "c0000000000000000000000000" }))
            ])
          ).pipe(Effect.provide(asBob))
          for (const failure of failures) {
            expect(failure).toBeInstanceOf(NotFound)
            expect(failure).toEqual(failures[3])
          }
        }
        expect(yield* sql("SELECT count(*)::int AS n FROM suggestions WHERE session_id = $1", [created.id])).toEqual([
          { n: 5 }
        ])
      })
    )
  }
)

/**
 * Alice follows a queued session over RPC (no worker: it stays queued), then a DELETE of hers at
 * `path` takes it away (the session, or her account): what the follow fails with.
 */
const followFailureAfterDelete = (path: (sessionId: string) => string) =>
  Effect.gen(function* () {
    const url = yield* baseUrl
    const { alice } = yield* twoUsers(url)
    const uploadId = yield* uploadPng(url, alice.headers, screenshot)
    return yield* Effect.gen(function* () {
      const rpc = yield* WingmateRpcClient
      const created = yield* rpc.sessions.create({ uploadIds: [uploadId] })
      const following = yield* Deferred.make<void>()
      const follow = yield* rpc.sessions.follow({ sessionId: created.id, afterSeq: 0 }).pipe(
        Stream.runForEach(() => Deferred.succeed(following, undefined)),
        Effect.fork
      )
      yield* Deferred.await(following)
      const deleted = yield* Effect.promise(() =>
        fetch(`${url}${path(created.id)}`, { method: "DELETE", headers: alice.headers })
      )
      expect(deleted.status).toBe(204)
      return yield* Effect.flip(Fiber.join(follow))
    }).pipe(Effect.provide(WingmateRpcClient.http({ baseUrl: url, token: alice.token })))
  })

layer(testServer({ db: TestDb(), consumer: false }), { timeout: 60_000, excludeTestServices: true })(
  "rpc: sessions, no worker",
  (it) => {
    it.effect("a followed session deleted meanwhile: the follow fails NotFound instead of waiting forever", () =>
      Effect.gen(function* () {
        // Before: the stream ended without its terminal event, as if the session could still go on.
        const failure = yield* followFailureAfterDelete((sessionId) => `/api/v1/sessions/${sessionId}`)
        expect(failure).toBeInstanceOf(NotFound)
      })
    )

    it.effect("a followed session of an account erased meanwhile: the follow fails Unauthorized account-erased", () =>
      Effect.gen(function* () {
        // Before: NotFound, as for a session deleted by itself.
        const failure = yield* followFailureAfterDelete(() => "/api/v1/users/me")
        expect(failure).toBeInstanceOf(Unauthorized)
        expect(failure).toMatchObject({ details: { reason: "account-erased" } })
      })
    )
  }
)
