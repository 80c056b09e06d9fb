/**
 * A match deleted while its openers are being generated (from another device): the generation
 * ends with NOT_FOUND naming the match, on every transport (WebSocket `opener.error`, the SSE
 * `failed` event, the RPC stream's `NotFound`), never an internal error, and nothing of the
 * database's own words reaches the client. The model's answer is held after its first line (saved),
 * the match is deleted, then the second line comes and cannot be saved for a match that is gone.
 */
import { expect, layer } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { afterAll, beforeEach } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { http, readStreamed } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { rpcRequest, rpcStreamed } from "../../support/rpc-socket.ts"
import { type TestUser, twoUsers } from "../../support/users.ts"
import { connectAs, ofType } from "../../support/ws.ts"
import { TestDb } from "../../support/database.ts"
import { heldAfterTheFirstLine, INTERNAL_WORDS, newMatch, openerRows, parseFrame, type SseEvent } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

const Server = testServer({
  db: TestDb(),
  config: {
    OPENAI_API_KEY: "test",
    OPENAI_BASE_URL: openai.url,
    AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
    AI_BREAKER_FAILURES: "1000",
    AI_DAILY_SPEND_CAP_MICROS: "0",
    OPENERS_DAILY_LIMIT: "10000"
  }
})

const MATCH_GONE = { code: "NOT_FOUND", message: "Match not found" }

/** DELETE /matches/:id as `user`: 204. */
const deleteMatch = (url: string, user: TestUser, matchId: string) =>
  Effect.gen(function* () {
    const res = yield* http(`${url}/api/v1/matches/${matchId}`, { method: "DELETE", headers: user.headers })
    expect(res.status).toBe(204)
  })

layer(Server, { timeout: 60_000 })("openers: a match deleted during its generation", (it) => {
  it.scoped("WebSocket: opener.error NOT_FOUND for the match, after what was said before", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Climber" })
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const socket = yield* connectAs(url, alice.token)
      yield* socket.send({ type: "opener.generate", requestId: "g1", matchId: match.id, count: 2 })
      yield* socket.next(ofType("opener.saved"))
      yield* deleteMatch(url, alice, match.id)
      yield* Deferred.succeed(released, undefined)

      // Before: opener.error INTERNAL_ERROR, and an ERROR logged for the foreign key of the match.
      const end = yield* socket.next((frame) => frame.type === "opener.error" || frame.type === "opener.done")
      expect(end).toEqual({ type: "opener.error", requestId: "g1", ...MATCH_GONE })
      // The second line's delta came with the line's end, whose save failed: not sent.
      expect(socket.frames.filter((frame) => frame["requestId"] === "g1").map((frame) => frame.type)).toEqual([
        "opener.delta",
        "opener.saved",
        "opener.error"
      ])
      // The match took its opener with it; nothing was saved after.
      expect(yield* openerRows(alice.id)).toEqual([])
      // The connection goes on serving.
      yield* socket.send({ type: "ping", t: 1 })
      expect(yield* socket.next(ofType("pong"))).toEqual({ type: "pong", t: 1 })
    })
  )

  it.effect("REST SSE: the terminal failed event is NOT_FOUND for the match", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Climber" })
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const events: Array<SseEvent> = []
      yield* readStreamed(
        `${url}/api/v1/magic-openers/generate`,
        {
          method: "POST",
          headers: { ...alice.headers, "content-type": "application/json", accept: "text/event-stream" },
          body: JSON.stringify({ matchId: match.id, count: 2 })
        },
        "\n\n",
        async (frame) => {
          const event = parseFrame(frame)
          if (event === undefined) return
          events.push({ event: event.event, data: event.data })
          if (event.event === "done") {
            await Effect.runPromise(
              Effect.zipRight(deleteMatch(url, alice, match.id), Deferred.succeed(released, undefined))
            )
          }
        }
      )
      // Before: `failed` INTERNAL_ERROR.
      expect(events.map((event) => event.event)).toEqual(["delta", "done", "failed"])
      expect(events.at(-1)?.data).toEqual({ ...MATCH_GONE, openers: [expect.objectContaining({ text: "Hi Sam?" })] })
      expect(yield* openerRows(alice.id)).toEqual([])
    })
  )

  it.effect("RPC: the stream fails NotFound for the match; nothing of the database reaches the client", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const match = yield* newMatch(url, alice.headers, { name: "Sam", bio: "Climber" })
      const released = yield* Deferred.make<void>()
      heldAfterTheFirstLine(openai, released)
      const lines = yield* rpcStreamed(
        url,
        rpcRequest("1", "openers.generate", { matchId: match.id, count: 2 }, alice.token),
        async (line) => {
          if (line.includes('"_tag":"done"')) {
            await Effect.runPromise(
              Effect.zipRight(deleteMatch(url, alice, match.id), Deferred.succeed(released, undefined))
            )
          }
        }
      )
      // Before: `Exit` Failure Die { name: "DbError", message: "… PrismaClientKnownRequestError … magic_openers_match_id_fkey …" }.
      expect(lines.at(-1)).toEqual({
        _tag: "Exit",
        requestId: "1",
        exit: { _tag: "Failure", cause: { _tag: "Fail", error: { _tag: "NotFound", message: MATCH_GONE.message } } }
      })
      expect(JSON.stringify(lines)).not.toMatch(INTERNAL_WORDS)
      expect(yield* openerRows(alice.id)).toEqual([])
    })
  )
})
