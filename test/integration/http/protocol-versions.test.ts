/**
 * Protocol versions of the long-lived transports (src/domain/protocol.ts): `/ws` selects the
 * subprotocol `wingmate.v1` when offered and takes no offer as v1; `/rpc` reads
 * `Wingmate-Protocol` (HTTP and upgrade) or the subprotocol `wingmate.rpc.v1`. Another version is
 * refused before any work with a 400 envelope naming what is supported.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import WebSocket from "ws"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import { http, rawUpgrade as upgrade } from "../../support/http.ts"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

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

/**
 * Sec-WebSocket-Protocol values the socket server (`ws`) would refuse with an HTML 400 of its own:
 * not tokens separated by commas (optional spaces around them), empty, or a token offered twice.
 */
const malformedOffers = (subprotocol: string) => [
  ",",
  "",
  "a,,b",
  "a b",
  `${subprotocol},`,
  `,${subprotocol}`,
  `${subprotocol}, ${subprotocol}`,
  `${subprotocol};q=1`,
  `${subprotocol}, "quoted"`
]

const malformed = (supported: ReadonlyArray<string>) => ({
  success: false,
  error: {
    code: "BAD_REQUEST",
    message: expect.stringContaining("Sec-WebSocket-Protocol"),
    details: { reason: "malformed-subprotocols", supported }
  }
})

layer(testServer({ db: TestDb() }), { timeout: 60_000, excludeTestServices: true })("protocol versions", (it) => {
  it.effect("a malformed or empty Sec-WebSocket-Protocol, or a bad key or version, is refused with the envelope", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      for (const [path, subprotocol] of [
        ["/ws", "wingmate.v1"],
        ["/rpc", "wingmate.rpc.v1"]
      ] as const) {
        for (const offer of malformedOffers(subprotocol)) {
          const refused = yield* upgrade(url, path, { "sec-websocket-protocol": offer })
          const what = `${path} ${JSON.stringify(offer)}: ${refused.status} ${refused.text}`
          expect(refused.status, what).toBe(400)
          expect(refused.contentType, what).toBe("application/json")
          expect(refused.body, what).toEqual(malformed([subprotocol]))
        }
        // Another part of the handshake `ws` would refuse (and never hand back) is refused the same way.
        for (const headers of [
          { "sec-websocket-key": "not a nonce" },
          { "sec-websocket-key": "" },
          { "sec-websocket-version": "12" },
          { "sec-websocket-version": "13, 8" }
        ]) {
          const refused = yield* upgrade(url, path, headers)
          const what = `${path} ${JSON.stringify(headers)}: ${refused.status} ${refused.text}`
          expect(refused.status, what).toBe(400)
          expect(refused.body, what).toEqual({
            success: false,
            error: {
              code: "BAD_REQUEST",
              message: expect.stringMatching(/Sec-WebSocket-(Key|Version)/),
              details: { reason: "malformed-handshake" }
            }
          })
        }
        // A well-formed offer of several (the client joins them with ", ") is still served.
        expect(yield* selected(url, path, ["x-other", subprotocol])).toBe(subprotocol)
      }
    })
  )

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
