/**
 * Protocol versions of the long-lived transports (src/domain/protocol.ts): `/ws` selects the
 * subprotocol `wingmate.v1` when offered and takes no offer as v1; `/rpc` reads
 * `Wingmate-Protocol` (HTTP and upgrade) or the subprotocol `wingmate.rpc.v1`. Another version is
 * refused before any work with a 400 envelope naming what is supported.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { connect } from "node:net"
import WebSocket from "ws"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import { http } from "../../support/http.ts"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

/**
 * A WebSocket upgrade request written on a plain TCP socket, read until the server closes it: a
 * refusal is an HTTP answer, which `WebSocket` clients hide (and Node's HTTP client, expecting an
 * upgrade, may drop).
 */
const upgrade = (url: string, path: string, headers: Record<string, string>) =>
  Effect.async<{ readonly status: number; readonly contentType: string | undefined; readonly body: unknown }, Error>(
    (resume) => {
      const lines = [
        `GET ${path} HTTP/1.1`,
        "host: 127.0.0.1",
        "connection: Upgrade",
        "upgrade: websocket",
        "sec-websocket-version: 13",
        `sec-websocket-key: ${randomBytes(16).toString("base64")}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)
      ]
      const socket = connect(Number(new URL(url).port), "127.0.0.1", () => {
        socket.write(`${lines.join("\r\n")}\r\n\r\n`)
      })
      const chunks: Array<Buffer> = []
      socket.on("data", (chunk: Buffer) => {
        chunks.push(chunk)
        const text = Buffer.concat(chunks).toString("utf8")
        const split = text.indexOf("\r\n\r\n")
        const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1]
        if (split === -1 || length === undefined || Buffer.byteLength(text.slice(split + 4)) < Number(length)) return
        socket.destroy()
        resume(
          Effect.succeed({
            status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
            contentType: /\r\ncontent-type: ([^\r]*)/i.exec(text)?.[1],
            body: JSON.parse(text.slice(split + 4)) as unknown
          })
        )
      })
      socket.on("error", (error) => resume(Effect.fail(error)))
      socket.on("close", () => resume(Effect.fail(new Error("closed without a complete answer"))))
    }
  )

/** Opens a socket offering `protocols` (none when empty) and answers the subprotocol the server selected. */
const selected = (url: string, path: string, protocols: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    Effect.async<WebSocket, Error>((resume) => {
      const ws = new WebSocket(`${url.replace(/^http/, "ws")}${path}`, [...protocols])
      ws.on("open", () => resume(Effect.succeed(ws)))
      ws.on("unexpected-response", (_request, response) =>
        resume(Effect.fail(new Error(`handshake refused: ${response.statusCode}`)))
      )
      ws.on("error", (error) => resume(Effect.fail(error)))
    }),
    (ws) => Effect.succeed(ws.protocol),
    (ws) => Effect.sync(() => ws.close())
  )

const unsupported = (supported: ReadonlyArray<string>) => ({
  success: false,
  error: {
    code: "BAD_REQUEST",
    message: expect.stringContaining("supported"),
    details: { reason: "unsupported-protocol", supported }
  }
})

layer(testServer({ db: TestDb() }), { timeout: 60_000, excludeTestServices: true })("protocol versions", (it) => {
  it.effect("/ws: wingmate.v1 is selected when offered, no offer is v1, only unknown versions are refused", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      expect(yield* selected(url, "/ws", ["wingmate.v1"])).toBe("wingmate.v1")
      expect(yield* selected(url, "/ws", ["wingmate.v2", "wingmate.v1"])).toBe("wingmate.v1")
      expect(yield* selected(url, "/ws", [])).toBe("")

      for (const offer of ["wingmate.v2", "chat, superchat"]) {
        const refused = yield* upgrade(url, "/ws", { "sec-websocket-protocol": offer })
        expect(refused.status, offer).toBe(400)
        expect(refused.contentType).toBe("application/json")
        expect(refused.body).toEqual(unsupported(["wingmate.v1"]))
      }
    })
  )

  it.effect(
    "/rpc over HTTP: Wingmate-Protocol 1 (or none) is served and answered with its version; another is 400",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        for (const headers of [{}, { "wingmate-protocol": "1" }]) {
          const served = yield* http(`${url}/rpc`, {
            method: "POST",
            headers: { "content-type": "application/ndjson", ...headers },
            body: ""
          })
          expect(served.status).toBe(200)
          expect(served.headers.get("wingmate-protocol")).toBe("1")
        }
        for (const version of ["2", "0", "v1"]) {
          const refused = yield* http(`${url}/rpc`, {
            method: "POST",
            headers: { "content-type": "application/ndjson", "wingmate-protocol": version },
            body: ""
          })
          expect(refused.status, version).toBe(400)
          expect(refused.body).toEqual(unsupported(["1"]))
        }
      })
  )

  it.effect("/rpc over WebSocket: wingmate.rpc.v1 is selected among offers; unknown versions are refused", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      expect(yield* selected(url, "/rpc", ["wingmate.rpc.v1"])).toBe("wingmate.rpc.v1")
      // The socket server would select the first offer: the version it speaks is chosen instead.
      expect(yield* selected(url, "/rpc", ["wingmate.rpc.v2", "wingmate.rpc.v1"])).toBe("wingmate.rpc.v1")
      expect(yield* selected(url, "/rpc", [])).toBe("")

      const byOffer = yield* upgrade(url, "/rpc", { "sec-websocket-protocol": "wingmate.rpc.v2" })
      expect(byOffer.status).toBe(400)
      expect(byOffer.body).toEqual(unsupported(["wingmate.rpc.v1"]))
      const byHeader = yield* upgrade(url, "/rpc", { "wingmate-protocol": "2" })
      expect(byHeader.status).toBe(400)
      expect(byHeader.body).toEqual(unsupported(["1"]))

      // The typed client offers wingmate.rpc.v1 and is served.
      const me = yield* Effect.flatMap(WingmateRpcClient, (rpc) => rpc.users.me()).pipe(
        Effect.provide(WingmateRpcClient.webSocket({ baseUrl: url, token: alice.token }))
      )
      expect(me.id).toBe(alice.id)
    })
  )
})
