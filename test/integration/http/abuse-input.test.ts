/**
 * Hostile input on the real server (issue #13, items 3, 5 and 6): NUL bytes and lone surrogates
 * in every class of text field (REST, WebSocket, RPC) are a 400 naming the field, never a 500 or
 * a silently mangled row; JSON nested beyond the limit is refused before decoding; validation
 * errors never echo a large value back.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb } from "../../support/database.ts"
import { http, issuePaths } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser, type TestUser } from "../../support/users.ts"
import { connectAs, ofType } from "../../support/ws.ts"
import WebSocket from "ws"

/** A JSON body written by hand: `\u0000` and `\ud800` stay JSON escapes, exactly as a client can send them. */
const send = (method: string, url: string, user: TestUser, rawBody: string) =>
  http(url, { method, headers: { ...user.headers, "content-type": "application/json" }, body: rawBody })

const NUL = "\\u0000"
const LONE = "\\ud800"

const expectValidation = (res: { status: number; body: unknown }, path: string) => {
  expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(400)
  expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
  expect(issuePaths(res.body)).toContain(path)
}

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

/** POSTs raw NDJSON to /rpc; the response lines parsed. */
const rpc = (url: string, body: string) =>
  Effect.map(
    http(`${url}/rpc`, { method: "POST", headers: { "content-type": "application/ndjson" }, body }),
    (res) => ({
      status: res.status,
      text: res.text,
      lines: res.text
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as unknown)
    })
  )

const rpcRequest = (user: TestUser, tag: string, payloadJson: string) =>
  `{"_tag":"Request","id":"1","tag":"${tag}","payload":${payloadJson},"headers":[["authorization","Bearer ${user.token}"]]}\n`

/** A raw WebSocket to /rpc (JSON messages); `next` is the next message, parsed. */
const rpcWebSocket = (url: string) =>
  Effect.acquireRelease(
    Effect.async<{ ws: WebSocket; next: Effect.Effect<unknown> }, Error>((resume) => {
      const ws = new WebSocket(`${url.replace(/^http/, "ws")}/rpc`)
      const received: Array<unknown> = []
      const waiting: Array<(message: unknown) => void> = []
      ws.on("message", (data) => {
        const message: unknown = JSON.parse(data.toString())
        const waiter = waiting.shift()
        if (waiter === undefined) received.push(message)
        else waiter(message)
      })
      ws.on("error", (error) => resume(Effect.fail(error)))
      ws.on("open", () =>
        resume(
          Effect.succeed({
            ws,
            next: Effect.async<unknown>((done) => {
              if (received.length > 0) done(Effect.succeed(received.shift()))
              else waiting.push((message) => done(Effect.succeed(message)))
            })
          })
        )
      )
    }),
    ({ ws }) => Effect.sync(() => ws.terminate())
  )

layer(testServer({ db: TestDb(), config: { AI_DAILY_SPEND_CAP_MICROS: "0", OPENERS_DAILY_LIMIT: "10000" } }), {
  timeout: 60_000
})("hostile input", (it) => {
  it.effect("names: NUL or a lone surrogate in firstName / lastName → 400 naming the field, nothing written", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "names")
      const me = `${url}/api/v1/users/me`
      expectValidation(yield* send("PATCH", me, user, `{"firstName":"A${NUL}da"}`), "firstName")
      expectValidation(yield* send("PATCH", me, user, `{"lastName":"Love${LONE}lace"}`), "lastName")
      expectValidation(yield* send("PATCH", me, user, `{"lastName":"Love\\u0007lace"}`), "lastName")
      const after = yield* http(me, { headers: user.headers })
      expect(after.body).toMatchObject({ data: { firstName: "names", lastName: null } })
    })
  )

  it.effect("match fields: NUL or a lone surrogate in name, bio, interests, notes, platform → 400 naming each", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "matches")
      const res = yield* send(
        "POST",
        `${url}/api/v1/matches`,
        user,
        `{"name":"Sam${NUL}","bio":"hi${LONE}","interests":["chess","x${LONE}"],"notes":"${NUL}","platform":"tin${NUL}der"}`
      )
      expectValidation(res, "name")
      expect(issuePaths(res.body)).toEqual(["bio", "interests.1", "name", "notes", "platform"])
      // Multi-line text keeps its newlines and tabs.
      const ok = yield* send("POST", `${url}/api/v1/matches`, user, `{"name":"Sam","bio":"line 1\\n\\tline 2"}`)
      expect(ok.status).toBe(201)
      expect(ok.body).toMatchObject({ data: { bio: "line 1\n\tline 2" } })
      // A single-line field refuses them.
      expectValidation(yield* send("POST", `${url}/api/v1/matches`, user, `{"name":"Sam\\nSmith"}`), "name")
    })
  )

  it.effect("generate profile and dislike reasons: NUL / lone surrogate → 400 naming the field", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "openers")
      const generate = `${url}/api/v1/magic-openers/generate`
      expectValidation(
        yield* send("POST", generate, user, `{"profile":{"name":"Sam${NUL}"},"count":1}`),
        "profile.name"
      )
      expectValidation(
        yield* send("POST", generate, user, `{"profile":{"name":"Sam","interests":["${LONE}"]},"count":1}`),
        "profile.interests.0"
      )
      const made = yield* send("POST", generate, user, `{"profile":{"name":"Sam"},"count":1}`)
      expect(made.status).toBe(200)
      const openerId = (made.body as { data: { openers: Array<{ id: string }> } }).data.openers[0]?.id ?? ""
      const dislike = `${url}/api/v1/magic-openers/${openerId}/dislike`
      expectValidation(yield* send("POST", dislike, user, `{"reason":"too ${NUL} long"}`), "reason")
      expectValidation(yield* send("POST", dislike, user, `{"reason":"${LONE}"}`), "reason")
      const fine = yield* send("POST", dislike, user, `{"reason":"too long"}`)
      expect(fine.status).toBe(200)
    })
  )

  it.effect("session context, transcript text, instructions and suggestion dislikes: NUL → 400 naming the field", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "sessions")
      const sessions = `${url}/api/v1/sessions`
      expectValidation(
        yield* send("POST", sessions, user, `{"uploadIds":["abc123"],"context":"be nice${NUL}"}`),
        "context"
      )
      expectValidation(
        yield* send("PATCH", `${sessions}/abc123/transcript`, user, `{"messages":[{"position":0,"text":"h${NUL}i"}]}`),
        "messages.0.text"
      )
      expectValidation(
        yield* send("POST", `${sessions}/abc123/suggestions`, user, `{"instruction":"${LONE}"}`),
        "instruction"
      )
      expectValidation(
        yield* send("POST", `${sessions}/abc123/suggestions/def456/dislike`, user, `{"reason":"${NUL}"}`),
        "reason"
      )
    })
  )

  it.effect("path and query parameters: NUL → 400 naming the parameter", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "params")
      const upload = yield* http(`${url}/api/v1/uploads/ab%00cd`, { headers: user.headers })
      expectValidation(upload, "uploadId")
      const cursor = yield* http(`${url}/api/v1/matches?cursor=ab%00cd`, { headers: user.headers })
      expectValidation(cursor, "cursor")
      const surrogate = yield* http(`${url}/api/v1/magic-openers?cursor=%ED%A0%80`, { headers: user.headers })
      expect(surrogate.status).toBe(400)
    })
  )

  it.scoped("WebSocket: opener.generate with a NUL in the profile → VALIDATION_ERROR naming the field", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "socket")
      const socket = yield* connectAs(url, user.token)
      yield* socket.sendRaw(`{"type":"opener.generate","requestId":"r1","profile":{"name":"Sam${NUL}"},"count":1}`)
      const error = yield* socket.next(ofType("error"))
      expect(error).toMatchObject({ code: "VALIDATION_ERROR", requestId: "r1" })
      expect(JSON.stringify(error["details"])).toContain('"path":"profile.name"')
      yield* socket.sendRaw(`{"type":"abort","requestId":"r${NUL}"}`)
      const refused = yield* socket.next(ofType("error"))
      expect(refused).toMatchObject({ code: "VALIDATION_ERROR" })
      expect(JSON.stringify(refused["details"])).toContain('"path":"requestId"')
    })
  )

  it.effect("RPC: a NUL in a payload's text is a decode failure naming the field, not a stored value", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "rpc")
      const res = yield* rpc(url, rpcRequest(user, "openers.generate", `{"profile":{"name":"Sam${NUL}"},"count":1}`))
      expect(res.status).toBe(200)
      expect(res.lines).toEqual([
        {
          _tag: "Exit",
          requestId: "1",
          exit: { _tag: "Failure", cause: { _tag: "Die", defect: expect.stringMatching(/name[\s\S]*control/) } }
        }
      ])
    })
  )

  it.effect("nesting beyond 64 levels → 400 before decoding, on every JSON route; 64 levels is decoded", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "deep")
      for (const [method, path] of [
        ["PATCH", "/api/v1/users/me"],
        ["POST", "/api/v1/matches"],
        ["POST", "/api/v1/magic-openers/generate"],
        ["POST", "/api/v1/sessions"],
        ["POST", "/api/v1/webhooks/clerk"]
      ] as const) {
        const res = yield* send(method, `${url}${path}`, user, `{"name":${nested(100_000)}}`)
        expect(res.status, `${method} ${path}: ${res.text.slice(0, 300)}`).toBe(400)
        expect(res.body).toEqual({
          success: false,
          error: {
            code: "VALIDATION_ERROR",
            message: "The request is invalid: see details.issues",
            details: { issues: [{ path: "", message: "JSON nested deeper than 64 levels" }] }
          }
        })
      }
      // Brackets inside strings are text, not nesting.
      const inString = yield* send("POST", `${url}/api/v1/matches`, user, `{"name":"${"[".repeat(90)}"}`)
      expect(inString.status).toBe(201)
      // At the limit: decoded, and refused by the schema as usual.
      const atLimit = yield* send("POST", `${url}/api/v1/matches`, user, `{"name":${nested(63)}}`)
      expectValidation(atLimit, "name")
      const live = yield* http(`${url}/health/live`)
      expect(live.status).toBe(200)
    })
  )

  it.scoped("nesting beyond 64 levels over WebSocket and RPC: refused, the connection and server unharmed", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "deepsock")
      const socket = yield* connectAs(url, user.token)
      yield* socket.sendRaw(`{"type":"ping","t":${nested(5_000)}}`)
      expect(yield* socket.next(ofType("error"))).toMatchObject({
        type: "error",
        code: "VALIDATION_ERROR",
        message: "JSON nested deeper than 64 levels"
      })
      yield* socket.send({ type: "ping", t: 1 })
      expect(yield* socket.next(ofType("pong"))).toEqual({ type: "pong", t: 1 })

      // RPC answers unreadable input as it answers malformed JSON: a `Defect` message.
      const res = yield* rpc(url, rpcRequest(user, "openers.like", `{"openerId":${nested(100_000)}}`))
      expect(res.status).toBe(200)
      expect(res.lines).toEqual([
        { _tag: "Defect", defect: { name: "Error", message: "JSON nested deeper than 64 levels" } }
      ])
      const me = yield* rpc(url, rpcRequest(user, "users.me", "{}"))
      expect(me.lines).toMatchObject([{ _tag: "Exit", exit: { _tag: "Success" } }])

      // RPC over WebSocket: the same refusal, and the socket keeps serving.
      const rpcSocket = yield* rpcWebSocket(url)
      rpcSocket.ws.send(rpcRequest(user, "openers.like", `{"openerId":${nested(10_000)}}`))
      expect(yield* rpcSocket.next).toEqual({
        _tag: "Defect",
        defect: { name: "Error", message: "JSON nested deeper than 64 levels" }
      })
      rpcSocket.ws.send(rpcRequest(user, "users.me", "{}"))
      expect(yield* rpcSocket.next).toMatchObject({ _tag: "Exit", exit: { _tag: "Success" } })
    })
  )

  it.effect("a validation error never echoes a large value, and lists a bounded number of issues", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "echo")
      const big = "x".repeat(4 * 1024 * 1024)
      const res = yield* send("POST", `${url}/api/v1/matches`, user, JSON.stringify({ name: "Sam", bio: big }))
      expectValidation(res, "bio")
      expect(res.text.length).toBeLessThan(2_000)

      const wrongType = yield* send("POST", `${url}/api/v1/matches`, user, JSON.stringify({ name: [big, big] }))
      expectValidation(wrongType, "name")
      expect(wrongType.text.length).toBeLessThan(2_000)

      // Many wrong items: the issues listed are capped, the rest counted.
      const many = Array.from({ length: 4_000 }, (_, i) => i)
      const items = yield* send("POST", `${url}/api/v1/matches`, user, JSON.stringify({ name: "Sam", interests: many }))
      expect(items.status).toBe(400)
      const details = (items.body as { error: { details: { issues: Array<unknown>; omittedIssues?: number } } }).error
        .details
      expect(details.issues).toHaveLength(20)
      expect(details.omittedIssues).toBeGreaterThan(3_000)
      expect(items.text.length).toBeLessThan(10_000)

      // More values than any contract takes: refused before decoding (100,000 issues took seconds to format).
      const tooMany = Array.from({ length: 100_000 }, (_, i) => i)
      const refused = yield* send(
        "POST",
        `${url}/api/v1/matches`,
        user,
        JSON.stringify({ name: "Sam", interests: tooMany })
      )
      expect(refused.status).toBe(400)
      expect(refused.body).toEqual({
        success: false,
        error: {
          code: "VALIDATION_ERROR",
          message: "The request is invalid: see details.issues",
          details: { issues: [{ path: "", message: "JSON of more than 5000 items (array elements and members)" }] }
        }
      })

      const rpcRes = yield* rpc(url, rpcRequest(user, "openers.like", JSON.stringify({ openerId: big })))
      expect(rpcRes.text.length).toBeLessThan(2_000)

      const socket = yield* Effect.scoped(
        Effect.gen(function* () {
          const s = yield* connectAs(url, user.token)
          yield* s.send({ type: "opener.generate", requestId: "r1", profile: { name: "x".repeat(500) } })
          return yield* s.next(ofType("error"))
        })
      )
      expect(JSON.stringify(socket).length).toBeLessThan(1_000)
    })
  )
})
