/**
 * Slow and greedy clients through the real server: stalled headers and bodies are answered 408
 * within the configured timeouts (Node's defaults hold them for minutes), an oversized chunked
 * body gets its 413 envelope rather than a reset, and open connections per address are capped.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { connect, type Socket } from "node:net"
import { request } from "node:http"
import { bearer, newClerkId, tokenFor } from "../../support/auth.ts"
import { TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { baseUrl, testServer } from "../../support/server.ts"

interface RawAnswer {
  readonly status: number
  readonly body: unknown
}

const parse = (raw: string): RawAnswer => {
  const [head = "", ...rest] = raw.split("\r\n\r\n")
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
  const text = rest.join("\r\n\r\n")
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status, body }
}

const portOf = Effect.map(baseUrl, (url) => Number(new URL(url).port))

/** A raw TCP connection to the server, open once connected. */
const open = Effect.flatMap(portOf, (port) =>
  Effect.async<Socket, Error>((resume) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => resume(Effect.succeed(socket)))
    socket.once("error", (error) => resume(Effect.fail(error)))
  })
)

/** Writes `data` (may be a partial request) and collects everything until the server closes. */
const untilClosed = (socket: Socket, data: string) =>
  Effect.async<RawAnswer>((resume) => {
    const chunks: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", () => undefined)
    socket.once("close", () => resume(Effect.succeed(parse(Buffer.concat(chunks).toString("utf8")))))
    socket.write(data)
  })

/** Sends one complete keep-alive request and waits for its whole answer; the connection stays open. */
const roundTrip = (socket: Socket, path: string) =>
  Effect.async<RawAnswer>((resume) => {
    let raw = ""
    const onData = (chunk: Buffer) => {
      raw += chunk.toString("utf8")
      const length = Number(/content-length: (\d+)/i.exec(raw)?.[1] ?? -1)
      const headEnd = raw.indexOf("\r\n\r\n")
      if (headEnd !== -1 && length >= 0 && Buffer.byteLength(raw.slice(headEnd + 4)) >= length) {
        socket.off("data", onData)
        resume(Effect.succeed(parse(raw)))
      }
    }
    socket.on("data", onData)
    socket.write(`GET ${path} HTTP/1.1\r\nhost: localhost\r\nconnection: keep-alive\r\n\r\n`)
  })

const timeouts = {
  HTTP_HEADERS_TIMEOUT_MS: "1000",
  HTTP_REQUEST_TIMEOUT_MS: "2000",
  HTTP_KEEP_ALIVE_TIMEOUT_MS: "60000"
}

describe("slow clients", () => {
  it.live("headers that never end: 408 REQUEST_TIMEOUT envelope, connection closed", () =>
    Effect.gen(function* () {
      const socket = yield* open
      const answer = yield* untilClosed(socket, "GET /health/live HTTP/1.1\r\nhost: localhost\r\nx-slow: 1\r\n")
      expect(answer).toEqual({
        status: 408,
        body: { success: false, error: { code: "REQUEST_TIMEOUT", message: "The request did not arrive in time" } }
      })
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: timeouts })))
  )

  it.live("a body that never ends: 408 REQUEST_TIMEOUT envelope, connection closed", () =>
    Effect.gen(function* () {
      const socket = yield* open
      const token = tokenFor({ clerkId: newClerkId("slow") })
      const answer = yield* untilClosed(
        socket,
        `POST /api/v1/matches HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${token}\r\n` +
          `content-type: application/json\r\ncontent-length: 100\r\n\r\n{"name":"a`
      )
      expect(answer.status).toBe(408)
      expect(answer.body).toMatchObject({ success: false, error: { code: "REQUEST_TIMEOUT" } })
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: timeouts })))
  )

  it.live("an oversized chunked body: the 413 envelope, not a reset; the server keeps serving", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const headers = { ...bearer(tokenFor({ clerkId: newClerkId("chunked") })), "content-type": "application/json" }
      const answer = yield* Effect.async<RawAnswer, Error>((resume) => {
        const req = request(`${url}/api/v1/matches`, { method: "POST", headers }, (res) => {
          let text = ""
          res.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")))
          res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: JSON.parse(text) })))
        })
        req.on("error", (error) => resume(Effect.fail(error)))
        // No content-length: chunked. 11 MiB over the default 10 MiB limit, in 64 KiB chunks.
        const chunk = "x".repeat(65_536)
        req.write('{"name":"')
        let sent = 0
        const pump = () => {
          while (sent < 176) {
            sent++
            if (!req.write(chunk)) return void req.once("drain", pump)
          }
          req.end('"}')
        }
        pump()
      })
      expect(answer).toEqual({
        status: 413,
        body: { success: false, error: { code: "PAYLOAD_TOO_LARGE", message: "The request body is too large" } }
      })
      const socket = yield* open
      expect((yield* roundTrip(socket, "/health/live")).status).toBe(200)
      socket.destroy()
    }).pipe(Effect.provide(testServer({ db: TestDb() })))
  )

  it.live("open connections per address are capped: the next one gets a 429 envelope until one closes", () =>
    Effect.gen(function* () {
      const held = yield* Effect.forEach([1, 2, 3], () => open)
      // A full exchange on each: the server has counted all three.
      for (const socket of held) expect((yield* roundTrip(socket, "/health/live")).status).toBe(200)
      const refused = yield* untilClosed(yield* open, "")
      expect(refused).toEqual({
        status: 429,
        body: {
          success: false,
          error: { code: "RATE_LIMITED", message: "Too many open connections from this address" }
        }
      })
      held[0]!.destroy()
      // The server sees the close shortly after: a new connection is admitted then.
      const once = Effect.flatMap(open, (socket) =>
        untilClosed(socket, "GET /health/live HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
      )
      const admitted = yield* eventually(
        Effect.either(once),
        (answer) => Either.isRight(answer) && answer.right.status !== 429,
        "a connection to be admitted again"
      ).pipe(Effect.flatMap(Either.match({ onLeft: Effect.die, onRight: Effect.succeed })))
      expect(admitted.status).toBe(200)
      for (const socket of held) socket.destroy()
    }).pipe(
      Effect.provide(testServer({ db: TestDb(), config: { ...timeouts, HTTP_MAX_CONNECTIONS_PER_ADDRESS: "3" } }))
    )
  )

  it.live("behind trusted proxies (TRUST_PROXY) the peer is a proxy: its connections are not capped", () =>
    Effect.gen(function* () {
      const held = yield* Effect.forEach([1, 2, 3, 4, 5], () => open)
      for (const socket of held) expect((yield* roundTrip(socket, "/health/live")).status).toBe(200)
      for (const socket of held) socket.destroy()
    }).pipe(
      Effect.provide(
        testServer({
          db: TestDb(),
          config: { ...timeouts, HTTP_MAX_CONNECTIONS_PER_ADDRESS: "3", TRUST_PROXY: "1" }
        })
      )
    )
  )
})

describe("requests Node would answer on its own", () => {
  it.live("an HTTP/1.1 request without Host: the 400 BAD_REQUEST envelope (Node wrote an empty 400)", () =>
    Effect.gen(function* () {
      const answer = yield* Effect.flatMap(open, (socket) =>
        untilClosed(socket, "GET /api/v1/users/me HTTP/1.1\r\nconnection: keep-alive\r\n\r\n")
      )
      expect(answer).toEqual({
        status: 400,
        body: {
          success: false,
          error: { code: "BAD_REQUEST", message: "An HTTP/1.1 request must carry a Host header" }
        }
      })
      // HTTP/1.0 has no Host requirement: it reaches the routes.
      const old = yield* Effect.flatMap(open, (socket) => untilClosed(socket, "GET /health/live HTTP/1.0\r\n\r\n"))
      expect(old.status).toBe(200)
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: timeouts })))
  )

  it.live("an Expect other than 100-continue: the 417 EXPECTATION_FAILED envelope (Node wrote an empty 417)", () =>
    Effect.gen(function* () {
      const token = tokenFor({ clerkId: newClerkId("expect") })
      const answer = yield* Effect.flatMap(open, (socket) =>
        untilClosed(
          socket,
          `POST /api/v1/matches HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${token}\r\n` +
            `content-type: application/json\r\ncontent-length: 13\r\nexpect: 200-ok\r\n\r\n{"name":"Ada"}`
        )
      )
      expect(answer).toEqual({
        status: 417,
        body: {
          success: false,
          error: { code: "EXPECTATION_FAILED", message: "The only expectation this server meets is 100-continue" }
        }
      })
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: timeouts })))
  )
})
