/**
 * RPC messages of a malformed shape (not a payload: the envelope @effect/rpc reads itself) at
 * /rpc, written by hand: `null`, a request id that is not an integer string, headers that are not
 * pairs of strings, an `Ack` or `Interrupt` without a usable `requestId`. Each is answered with a
 * `Defect` message in its place; the other calls go on: over WebSocket a running
 * `sessions.follow` and later calls of the same socket, over NDJSON the batch's other lines.
 * Never a closed socket, never a 5xx.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { beforeAll } from "vitest"
import { chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { openRpcSocket, rpcRequest, type RpcWireMessage } from "../../support/rpc-socket.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { newSession } from "../sessions/support.ts"

let screenshot: Buffer

beforeAll(async () => {
  screenshot = await chatScreenshotPng()
})

/** Messages of a shape the server cannot read, each with what its `Defect` names. */
const malformed = (token: string): ReadonlyArray<readonly [string, unknown, RegExp]> => [
  ["null", null, /^Malformed RPC message: /],
  ["a number", 42, /^Malformed RPC message: /],
  ["an unknown _tag", { _tag: "Bogus" }, /_tag: /],
  ["a request id that is not an integer", rpcRequest("abc", "users.me", undefined, token), /\bid: /],
  ["a fractional request id", rpcRequest("1.5", "users.me", undefined, token), /\bid: /],
  ["a request id as a number", { ...rpcRequest("7", "users.me", undefined, token), id: 7 }, /\bid: /],
  ["headers as an object", { ...rpcRequest("8", "users.me", undefined), headers: { authorization: token } }, /headers/],
  ["headers null", { ...rpcRequest("9", "users.me", undefined), headers: null }, /headers/],
  ["headers not pairs of strings", { ...rpcRequest("10", "users.me", undefined), headers: [[1, 2], ["a"]] }, /headers/],
  ["a traceId that is not a string", { ...rpcRequest("11", "users.me", undefined, token), traceId: 5 }, /traceId/],
  ["an Ack without requestId", { _tag: "Ack" }, /requestId/],
  ["an Ack of requestId abc", { _tag: "Ack", requestId: "abc" }, /requestId/],
  ["an Interrupt without requestId", { _tag: "Interrupt" }, /requestId/],
  ["an Interrupt of requestId x", { _tag: "Interrupt", requestId: "x" }, /requestId/]
]

const isExitOf = (requestId: string) => (message: RpcWireMessage) =>
  message._tag === "Exit" && message["requestId"] === requestId

/** POSTs NDJSON lines to /rpc: the status and the response lines parsed. */
const ndjson = (url: string, lines: ReadonlyArray<unknown>) =>
  Effect.gen(function* () {
    const res = yield* http(`${url}/rpc`, {
      method: "POST",
      headers: { "content-type": "application/ndjson" },
      body: lines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n") + "\n"
    })
    const answers = res.text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as RpcWireMessage)
    return { status: res.status, text: res.text, answers }
  })

layer(testServer({ db: TestDb() }), { timeout: 60_000, excludeTestServices: true })("rpc: malformed messages", (it) => {
  it.scoped("webSocket: each gets a Defect; the socket, its running follow and its later calls go on", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      // No worker in this server: the session stays queued, and its follow runs until interrupted.
      const session = yield* newSession(url, alice.headers, screenshot)
      const socket = yield* openRpcSocket(url)
      yield* socket.send(rpcRequest("1", "sessions.follow", { sessionId: session.id }, alice.token))
      const snapshot = yield* socket.next((message) => message._tag === "Chunk" && message["requestId"] === "1")
      expect(snapshot).toMatchObject({ values: [{ _tag: "Snapshot" }] })

      let id = 100
      for (const [label, message, names] of malformed(alice.token)) {
        yield* socket.send(message)
        const defect = yield* socket.next((answer) => answer._tag === "Defect")
        expect(defect, label).toEqual({ _tag: "Defect", defect: expect.stringMatching(/^Malformed RPC message: /) })
        expect(defect["defect"], label).toMatch(names)
        // A later call on the same socket is answered.
        const later = String(id++)
        yield* socket.send(rpcRequest(later, "users.me", undefined, alice.token))
        expect(yield* socket.next(isExitOf(later)), label).toMatchObject({
          exit: { _tag: "Success", value: { id: alice.id } }
        })
      }
      // Not JSON at all: a Defect too, as before.
      yield* socket.send("{nope")
      expect(yield* socket.next((answer) => answer._tag === "Defect")).toMatchObject({
        defect: { name: "SyntaxError" }
      })

      // The follow was running all along: interrupted now, it ends with its own Exit.
      yield* socket.send({ _tag: "Interrupt", requestId: "1" })
      expect(yield* socket.next(isExitOf("1"))).toMatchObject({ exit: { _tag: "Failure" } })
      expect(socket.received.filter((message) => message._tag === "Defect")).toHaveLength(
        malformed(alice.token).length + 1
      )
    })
  )

  it.effect("http NDJSON: a bad line gets a Defect in its place; the batch's other lines are answered", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      for (const [label, message, names] of [...malformed(alice.token), ["not JSON", "{nope", /JSON/] as const]) {
        const res = yield* ndjson(url, [
          rpcRequest("1", "users.me", undefined, alice.token),
          message,
          rpcRequest("2", "users.me", undefined, alice.token)
        ])
        const what = `${label}: ${res.status} ${res.text.slice(0, 500)}`
        expect(res.status, what).toBe(200)
        expect(res.answers, what).toHaveLength(3)
        const defects = res.answers.filter((answer) => answer._tag === "Defect")
        expect(defects, what).toHaveLength(1)
        const defect = defects[0]?.["defect"]
        expect(typeof defect === "string" ? defect : JSON.stringify(defect), what).toMatch(names)
        for (const requestId of ["1", "2"]) {
          expect(res.answers.find(isExitOf(requestId)), what).toMatchObject({
            exit: { _tag: "Success", value: { id: alice.id } }
          })
        }
      }
    })
  )
})
