/**
 * The RPC server at /rpc through the typed client (src/client/rpc-client.ts), over HTTP (NDJSON)
 * and WebSocket, on the real server and PostgreSQL, no AI key (the local provider): the caller,
 * authentication, openers streamed, listed and liked, ownership; raw requests that are malformed.
 */
import { expect, layer } from "@effect/vitest"
import { randomBytes } from "node:crypto"
import { Cause, Chunk, Effect, Exit, type Layer, Stream } from "effect"
import { WingmateRpcClient, type WingmateRpcClientOptions } from "../../../src/client/rpc-client.ts"
import { NotFound, Unauthorized } from "../../../src/domain/errors.ts"
import type { OpenerEvent } from "../../../src/domain/openers.ts"
import { sql, TestDb } from "../../support/database.ts"
import { newClerkId, tokenFor } from "../../support/auth.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

/** What the client is told of a defect of the server: nothing of what went wrong. */
const GENERIC_DEFECT = { name: "InternalError", message: "An unexpected error occurred" }

/** Until the scope closes, PostgreSQL refuses every new match of `userId` (a trigger raising an error). */
const refusingMatchesOf = (userId: string) => {
  const name = `wm_test_refuse_${randomBytes(4).toString("hex")}`
  return Effect.acquireRelease(
    Effect.zipRight(
      sql(
        `CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for this test'; END $$`
      ),
      sql(
        `CREATE TRIGGER ${name} BEFORE INSERT ON matches FOR EACH ROW WHEN (NEW.user_id = '${userId}') EXECUTE FUNCTION ${name}()`
      )
    ),
    () => Effect.zipRight(sql(`DROP TRIGGER ${name} ON matches`), sql(`DROP FUNCTION ${name}()`))
  )
}

type Transport = "http" | "webSocket"
const transports: ReadonlyArray<Transport> = ["http", "webSocket"]

const client = (transport: Transport, options: WingmateRpcClientOptions): Layer.Layer<WingmateRpcClient> =>
  transport === "http" ? WingmateRpcClient.http(options) : WingmateRpcClient.webSocket(options)

/** Runs `f` with a typed client of the test server, over `transport`, as the holder of `token`. */
const withClient = <A, E>(
  transport: Transport,
  token: string | undefined,
  f: (rpc: WingmateRpcClient["Type"]) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const url = yield* baseUrl
    return yield* Effect.flatMap(WingmateRpcClient, f).pipe(Effect.provide(client(transport, { baseUrl: url, token })))
  })

/** POSTs raw NDJSON lines to /rpc: the status, content type and the response lines parsed. */
const rawNdjson = (url: string, body: string, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const res = yield* http(`${url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson", ...headers },
      body
    })
    const lines = res.text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as unknown)
    return { status: res.status, contentType: res.headers.get("content-type"), lines }
  })

layer(testServer({ db: TestDb(), config: { AI_DAILY_SPEND_CAP_MICROS: "0" } }), {
  timeout: 60_000,
  excludeTestServices: true
})("rpc: users, authentication and openers", (it) => {
  for (const transport of transports) {
    it.effect(`${transport}: users.me is the caller; no token or a bad one is Unauthorized with its reason`, () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const me = yield* withClient(transport, alice.token, (rpc) => rpc.users.me())
        expect(me).toMatchObject({ id: alice.id, email: `${alice.clerkId}@test.dev`, firstName: "alice" })
        expect(me.createdAt).toBeInstanceOf(Date)

        const anonymous = yield* withClient(transport, undefined, (rpc) => Effect.flip(rpc.users.me()))
        expect(anonymous).toBeInstanceOf(Unauthorized)
        expect(anonymous).toMatchObject({ details: { reason: "missing-token" } })
        const garbage = yield* withClient(transport, "not-a-jwt", (rpc) => Effect.flip(rpc.users.me()))
        expect(garbage).toMatchObject({ _tag: "Unauthorized", details: { reason: "malformed-token" } })
        const expired = tokenFor({ clerkId: newClerkId("expired"), expiresIn: -60 })
        const late = yield* withClient(transport, expired, (rpc) => Effect.flip(rpc.users.me()))
        expect(late).toMatchObject({ _tag: "Unauthorized", details: { reason: "token-expired" } })
        // A stream is refused the same way, before anything is generated.
        const refused = yield* withClient(transport, undefined, (rpc) =>
          Effect.flip(Stream.runCollect(rpc.openers.generate({ profile: { name: "Sam" }, count: 1 })))
        )
        expect(refused).toMatchObject({ _tag: "Unauthorized", details: { reason: "missing-token" } })
      })
    )

    it.effect(`${transport}: openers.generate streams deltas, done openers and final; list and like them`, () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const events = yield* withClient(transport, alice.token, (rpc) =>
          Stream.runCollect(rpc.openers.generate({ profile: { name: "Sam", interests: ["chess"] }, count: 2 }))
        ).pipe(Effect.map((chunk): ReadonlyArray<OpenerEvent> => Chunk.toReadonlyArray(chunk)))

        const kinds = events.map((event) => event._tag)
        expect(kinds.filter((kind) => kind !== "delta")).toEqual(["done", "done", "final"])
        expect(kinds.filter((kind) => kind === "delta").length).toBeGreaterThan(2)
        const done = events.flatMap((event) => (event._tag === "done" ? [event.opener] : []))
        expect(done.map((opener) => opener.text)).toEqual([
          "Okay Sam, important question: What's the story behind your love of chess? [local 1]",
          "Hi Sam! Settle a debate for me: What's the story behind your love of weekend plans? [local 2]"
        ])
        for (const [index, opener] of done.entries()) {
          const text = events
            .flatMap((event) => (event._tag === "delta" && event.index === index ? [event.text] : []))
            .join("")
          expect(text.trim()).toBe(opener.text)
          expect(opener.createdAt).toBeInstanceOf(Date)
        }
        const final = events.at(-1)
        expect(final).toEqual({
          _tag: "final",
          meta: {
            batchId: done[0]?.batchId,
            provider: "local",
            model: "local-deterministic",
            local: true,
            usage: { inputTokens: expect.any(Number), outputTokens: expect.any(Number) },
            costMicros: 0,
            blocked: 0
          }
        })
        const rows = yield* sql("SELECT id, text FROM magic_openers WHERE user_id = $1 ORDER BY position", [alice.id])
        expect(rows.map((row) => row["id"])).toEqual(done.map((opener) => opener.id))

        const [first, second] = done
        if (first === undefined || second === undefined) return yield* Effect.dieMessage("two openers expected")
        const page = yield* withClient(transport, alice.token, (rpc) => rpc.openers.list({ limit: 1 }))
        expect(page.items).toHaveLength(1)
        expect(page.nextCursor).toEqual(expect.any(String))
        const all = yield* withClient(transport, alice.token, (rpc) => rpc.openers.list({}))
        expect(new Set(all.items.map((opener) => opener.id))).toEqual(new Set([first.id, second.id]))
        const badCursor = yield* withClient(transport, alice.token, (rpc) =>
          Effect.flip(rpc.openers.list({ cursor: "nope" }))
        )
        expect(badCursor).toMatchObject({ _tag: "ValidationError", details: { issues: [{ path: "cursor" }] } })

        const liked = yield* withClient(transport, alice.token, (rpc) => rpc.openers.like({ openerId: first.id }))
        expect(liked).toEqual({ ...first, feedback: "liked" })
        const disliked = yield* withClient(transport, alice.token, (rpc) =>
          rpc.openers.dislike({ openerId: second.id, reason: "too cheesy" })
        )
        expect(disliked).toMatchObject({ id: second.id, feedback: "disliked", dislikeReason: "too cheesy" })
        expect(
          yield* sql("SELECT feedback FROM magic_openers WHERE user_id = $1 ORDER BY position", [alice.id])
        ).toEqual([{ feedback: "liked" }, { feedback: "disliked" }])
        const unliked = yield* withClient(transport, alice.token, (rpc) => rpc.openers.unlike({ openerId: first.id }))
        expect(unliked).toEqual({ ...first, feedback: null })

        // Another user's opener answers exactly like a missing one, and is untouched.
        const foreign = yield* withClient(transport, bob.token, (rpc) =>
          Effect.flip(rpc.openers.like({ openerId: second.id }))
        )
        const missing = yield* withClient(transport, bob.token, (rpc) =>
          Effect.flip(rpc.openers.like({ openerId: "nosuchopener" }))
        )
        expect(foreign).toBeInstanceOf(NotFound)
        expect(foreign).toEqual(missing)
        expect((yield* withClient(transport, bob.token, (rpc) => rpc.openers.list({}))).items).toEqual([])
        expect(
          yield* sql("SELECT feedback FROM magic_openers WHERE id = $1", [second.id]).pipe(
            Effect.map((found) => found[0])
          )
        ).toEqual({ feedback: "disliked" })
      })
    )
  }

  it.effect("several calls share one WebSocket: each answers its own request", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const [me, streamed, foreign] = yield* withClient("webSocket", alice.token, (rpc) =>
        Effect.all(
          [
            rpc.users.me(),
            Stream.runCollect(rpc.openers.generate({ profile: { name: "Kim" }, count: 1 })),
            Effect.exit(rpc.sessions.get({ sessionId: "nosuchsession" }))
          ],
          { concurrency: "unbounded" }
        )
      )
      expect(me.id).toBe(alice.id)
      expect(Chunk.toReadonlyArray(streamed).map((event) => event._tag)).toContain("done")
      expect(Exit.isFailure(foreign) && Cause.failureOption(foreign.cause)).toMatchObject({
        _tag: "Some",
        value: { _tag: "NotFound" }
      })
      expect(bob.id).not.toBe(alice.id)
    })
  )

  it.effect("over WebSocket the upgrade request's authorization is enough; a message's own header wins", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      // The socket opens with alice's token (Node's WebSocket sends headers; browsers cannot).
      const asAlice = (socketUrl: string, protocols?: string | Array<string>) =>
        new WebSocket(socketUrl, {
          ...(protocols === undefined ? {} : { protocols }),
          headers: { authorization: `Bearer ${alice.token}` }
        })
      const viaUpgrade = WingmateRpcClient.webSocket({ baseUrl: url, webSocket: asAlice })
      const me = yield* Effect.flatMap(WingmateRpcClient, (rpc) => rpc.users.me()).pipe(Effect.provide(viaUpgrade))
      expect(me.id).toBe(alice.id)
      const overridden = WingmateRpcClient.webSocket({ baseUrl: url, webSocket: asAlice, token: bob.token })
      const other = yield* Effect.flatMap(WingmateRpcClient, (rpc) => rpc.users.me()).pipe(Effect.provide(overridden))
      expect(other.id).toBe(bob.id)
    })
  )

  it.effect("a malformed request gets a clean answer: a decode error for its payload, the rest still served", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const request = (id: string, tag: string, payload: unknown) =>
        JSON.stringify({ _tag: "Request", id, tag, payload, headers: [["authorization", `Bearer ${alice.token}`]] })

      // A payload that does not match its schema fails that request with the decode error.
      const res = yield* rawNdjson(
        url,
        [
          request("1", "openers.generate", { profile: { name: "Sam" }, count: 9 }),
          request("2", "openers.like", { openerId: "not an id!" }),
          request("3", "users.me", {})
        ].join("\n") + "\n"
      )
      expect(res.status).toBe(200)
      expect(res.contentType).toMatch(/^application\/ndjson/)
      const exits = new Map(
        res.lines.map((line) => {
          const message = line as { _tag: string; requestId: string; exit: unknown }
          return [message.requestId, message.exit] as const
        })
      )
      expect(exits.get("1")).toEqual({
        _tag: "Failure",
        cause: { _tag: "Die", defect: expect.stringMatching(/count[\s\S]*between 1 and 5/) }
      })
      expect(exits.get("2")).toEqual({
        _tag: "Failure",
        cause: { _tag: "Die", defect: expect.stringMatching(/openerId[\s\S]*Expected an id/) }
      })
      expect(exits.get("3")).toMatchObject({ _tag: "Success", value: { id: alice.id } })

      // Not JSON at all, or an unknown procedure: a defect message, and the response ends.
      const broken = yield* rawNdjson(url, "{not json\n")
      expect(broken.status).toBe(200)
      expect(broken.lines).toEqual([
        { _tag: "Defect", defect: { name: "SyntaxError", message: expect.stringMatching(/JSON/) } }
      ])
      const unknown = yield* rawNdjson(url, request("4", "users.nothing", {}) + "\n")
      expect(unknown.lines).toEqual([{ _tag: "Defect", defect: "Unknown request tag: users.nothing" }])
      // An empty body: nothing to answer.
      expect((yield* rawNdjson(url, "")).lines).toEqual([])

      // Without a token over raw NDJSON: the Unauthorized failure itself.
      const anonymous = yield* rawNdjson(
        url,
        JSON.stringify({ _tag: "Request", id: "5", tag: "users.me", payload: {}, headers: [] }) + "\n"
      )
      expect(anonymous.lines).toEqual([
        {
          _tag: "Exit",
          requestId: "5",
          exit: {
            _tag: "Failure",
            cause: {
              _tag: "Fail",
              error: {
                _tag: "Unauthorized",
                message: "Authentication failed",
                details: { reason: "missing-token" }
              }
            }
          }
        }
      ])

      // A plain GET (no upgrade) is told what the endpoint is; other methods are unknown routes.
      const get = yield* http(`${url}/rpc`)
      expect(get.status).toBe(400)
      expect(get.body).toMatchObject({ success: false, error: { code: "BAD_REQUEST" } })
      const put = yield* http(`${url}/rpc`, { method: "PUT", body: "x" })
      expect(put.status).toBe(404)
      expect(put.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
    })
  )

  it.scoped("a defect answers a generic message on both transports, nothing of what went wrong", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      // The database refuses alice's new matches with words of its own: a query failure the handlers
      // treat as a defect (not a lost connection).
      yield* refusingMatchesOf(alice.id)
      const res = yield* rawNdjson(
        url,
        JSON.stringify({
          _tag: "Request",
          id: "1",
          tag: "matches.create",
          payload: { name: "Sam" },
          headers: [["authorization", `Bearer ${alice.token}`]]
        }) + "\n"
      )
      // Before: Die { name: "DbError", message: "{ operation: matches.create, cause: PrismaClientKnownRequestError … } }".
      expect(res.lines).toEqual([
        {
          _tag: "Exit",
          requestId: "1",
          exit: { _tag: "Failure", cause: { _tag: "Die", defect: GENERIC_DEFECT } }
        }
      ])
      const overSocket = yield* withClient("webSocket", alice.token, (rpc) =>
        Effect.exit(rpc.matches.create({ name: "Sam" }))
      )
      if (Exit.isSuccess(overSocket)) return yield* Effect.dieMessage("the match must be refused")
      expect(Cause.squash(overSocket.cause)).toMatchObject(GENERIC_DEFECT)
      for (const said of [JSON.stringify(res.lines), String(Cause.squash(overSocket.cause))]) {
        expect(said).not.toMatch(/prisma|matches\.create|wm_test|refused for this test|\.ts:/i)
      }
      // The same call of another user is served.
      const served = yield* withClient("webSocket", bob.token, (rpc) => rpc.matches.create({ name: "Sam" }))
      expect(served).toMatchObject({ name: "Sam" })
    })
  )
})

layer(
  testServer({
    db: TestDb(),
    config: {
      RATE_LIMIT_ENABLED: "true",
      RATE_LIMIT_WS_MESSAGE_USER: "3/60s",
      RATE_LIMIT_REST_USER: "1000/60s",
      RATE_LIMIT_REST_IP: "1000/60s"
    }
  }),
  { timeout: 60_000, excludeTestServices: true }
)("rpc: call limits", (it) => {
  it.effect("calls over one WebSocket count per user: the 4th is RateLimited, another user is unaffected", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const outcomes = yield* withClient("webSocket", alice.token, (rpc) =>
        Effect.forEach([1, 2, 3, 4], () => Effect.exit(rpc.users.me()))
      )
      expect(outcomes.map(Exit.isSuccess)).toEqual([true, true, true, false])
      const refused = outcomes[3]
      if (refused === undefined || Exit.isSuccess(refused)) return yield* Effect.dieMessage("expected a refusal")
      expect(Cause.failureOption(refused.cause)).toMatchObject({
        _tag: "Some",
        value: { _tag: "RateLimited", details: { retryAfterMs: expect.any(Number) } }
      })
      const other = yield* withClient("webSocket", bob.token, (rpc) => rpc.users.me())
      expect(other).toMatchObject({ id: bob.id })
    })
  )
})
