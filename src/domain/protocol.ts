/**
 * Protocol versions of the long-lived transports, so the app can be upgraded safely: the server
 * says which version it speaks, and refuses one it does not with a clear answer rather than
 * misreading frames. Client-safe constants (the typed clients send them).
 *
 * - `/ws`: the `Sec-WebSocket-Protocol` subprotocol `wingmate.v1`, selected when offered; an offer
 *   of none is v1 (older apps); an offer of only unknown versions is refused before the handshake
 *   (400 `BAD_REQUEST`, `details.reason: "unsupported-protocol"`, `details.supported`).
 * - `/rpc`: the `Wingmate-Protocol: 1` header (HTTP and the WebSocket upgrade; absent is 1), or on
 *   the WebSocket, where browsers cannot set headers, the subprotocol `wingmate.rpc.v1`. Another
 *   version is refused the same way. HTTP answers carry `Wingmate-Protocol: 1`.
 */

/** The subprotocol of the `/ws` gateway's frames (src/domain/realtime.ts), version 1. */
export const REALTIME_SUBPROTOCOL = "wingmate.v1"
export const REALTIME_SUBPROTOCOLS: ReadonlyArray<string> = [REALTIME_SUBPROTOCOL]

/** The header naming the RPC protocol version, on `/rpc` requests and answers. */
export const RPC_PROTOCOL_HEADER = "wingmate-protocol"
export const RPC_PROTOCOL_VERSION = "1"
export const RPC_PROTOCOL_VERSIONS: ReadonlyArray<string> = [RPC_PROTOCOL_VERSION]
/** The RPC WebSocket's subprotocol, version 1 (for clients that cannot set the header). */
export const RPC_SUBPROTOCOL = "wingmate.rpc.v1"
export const RPC_SUBPROTOCOLS: ReadonlyArray<string> = [RPC_SUBPROTOCOL]

/** The subprotocols a `Sec-WebSocket-Protocol` header offers, in order. */
export const offeredSubprotocols = (header: string | undefined): ReadonlyArray<string> =>
  (header ?? "")
    .split(",")
    .map((protocol) => protocol.trim())
    .filter((protocol) => protocol !== "")
