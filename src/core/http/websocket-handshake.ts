/**
 * The WebSocket handshake as the socket server (`ws`: the `/ws` gateway's and @effect/platform's,
 * for `/rpc`) checks it, checked before it is handed one. `ws` refuses a handshake it cannot
 * complete by answering an HTML 400 (405 for a method) itself and never calls back: the request
 * waits forever, for `/rpc` inside an uninterruptible acquire of @effect/platform-node, which then
 * holds shutdown up. So what `ws` would refuse is refused here first, with the API's envelope.
 */
import { Either, Option } from "effect"
import { MALFORMED_SUBPROTOCOLS, MALFORMED_SUBPROTOCOLS_MESSAGE, offeredSubprotocols } from "../../domain/protocol.ts"

/** `details.reason` of the 400 refusing a handshake `ws` would refuse (but its subprotocols). */
export const MALFORMED_HANDSHAKE = "malformed-handshake"

/** A 16-byte nonce in base64, as `ws` requires it. */
const KEY = /^[+/0-9A-Za-z]{22}==$/

export interface HandshakeRefusal {
  readonly message: string
  readonly details: { readonly reason: string; readonly supported?: ReadonlyArray<string> }
}

const headerOf = (headers: Readonly<Record<string, unknown>>, name: string): string | undefined => {
  const value = headers[name]
  return typeof value === "string" ? value : undefined
}

/**
 * The subprotocols an upgrade request offers (none: no header), or why `ws` would refuse its
 * handshake: not a GET, an Upgrade other than websocket, a missing or malformed
 * Sec-WebSocket-Key, a Sec-WebSocket-Version other than 13 or 8, a malformed
 * Sec-WebSocket-Protocol (`supported`: the server's subprotocols, said in the refusal).
 */
export const checkHandshake = (
  method: string | undefined,
  headers: Readonly<Record<string, unknown>>,
  supported: ReadonlyArray<string>
): Either.Either<ReadonlyArray<string>, HandshakeRefusal> => {
  const refuse = (message: string) => Either.left({ message, details: { reason: MALFORMED_HANDSHAKE } })
  if (method !== "GET") return refuse("A WebSocket upgrade is a GET request")
  if ((headerOf(headers, "upgrade") ?? "").toLowerCase() !== "websocket") {
    return refuse("Invalid Upgrade header: websocket expected")
  }
  if (!KEY.test(headerOf(headers, "sec-websocket-key") ?? "")) {
    return refuse("Missing or invalid Sec-WebSocket-Key header")
  }
  // As `ws` reads it (`+header`).
  const version = Number(headerOf(headers, "sec-websocket-version"))
  if (version !== 13 && version !== 8) {
    return refuse("Missing or invalid Sec-WebSocket-Version header: 13 (or 8) expected")
  }
  return Option.match(offeredSubprotocols(headerOf(headers, "sec-websocket-protocol")), {
    onNone: () =>
      Either.left({ message: MALFORMED_SUBPROTOCOLS_MESSAGE, details: { reason: MALFORMED_SUBPROTOCOLS, supported } }),
    onSome: (offered) => Either.right(offered)
  })
}
