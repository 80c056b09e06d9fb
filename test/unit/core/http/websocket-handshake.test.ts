/**
 * The WebSocket handshake checked as `ws` checks it (src/core/http/websocket-handshake.ts): what it
 * would refuse is refused, with the reason; a valid one answers the offered subprotocols.
 */
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { checkHandshake } from "../../../../src/core/http/websocket-handshake.ts"

const valid = {
  upgrade: "websocket",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  "sec-websocket-version": "13"
}
const check = (headers: Record<string, string>, method = "GET") =>
  checkHandshake(method, { ...valid, ...headers }, ["wingmate.v1"])

describe("checkHandshake", () => {
  it("answers the offered subprotocols in order: tokens separated by commas, spaces or tabs around them", () => {
    expect(check({})).toEqual(Either.right([]))
    expect(check({ upgrade: "WebSocket", "sec-websocket-version": "8" })).toEqual(Either.right([]))
    expect(check({ "sec-websocket-protocol": "wingmate.v1" })).toEqual(Either.right(["wingmate.v1"]))
    expect(check({ "sec-websocket-protocol": "a ,b,\tc , wingmate.v1" })).toEqual(
      Either.right(["a", "b", "c", "wingmate.v1"])
    )
    expect(check({ "sec-websocket-protocol": "!#$%&'*+-.^_`|~09AZaz" })).toEqual(
      Either.right(["!#$%&'*+-.^_`|~09AZaz"])
    )
  })

  it("refuses a malformed or empty Sec-WebSocket-Protocol, naming the supported subprotocols", () => {
    for (const header of ["", ",", " ", "a,", ",a", "a,,b", "a b", "a;b", 'a,"b"', "a/b", "a,a", "a, b, a", "é"]) {
      expect(check({ "sec-websocket-protocol": header }), JSON.stringify(header)).toEqual(
        Either.left({
          message: expect.stringContaining("Sec-WebSocket-Protocol"),
          details: { reason: "malformed-subprotocols", supported: ["wingmate.v1"] }
        })
      )
    }
  })

  it("refuses another method, Upgrade, a missing or bad key, a version other than 13 or 8", () => {
    const refusals = [
      check({}, "POST"),
      check({ upgrade: "h2c" }),
      check({ "sec-websocket-key": "short==" }),
      check({ "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ" }),
      checkHandshake("GET", { upgrade: "websocket", "sec-websocket-version": "13" }, []),
      check({ "sec-websocket-version": "12" }),
      check({ "sec-websocket-version": "" }),
      check({ "sec-websocket-version": "13, 8" })
    ]
    for (const refusal of refusals) {
      expect(refusal).toEqual(Either.left({ message: expect.any(String), details: { reason: "malformed-handshake" } }))
    }
  })
})
