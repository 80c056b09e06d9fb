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
 *
 * On both, a malformed `Sec-WebSocket-Protocol` header (empty, not a comma-separated list of
 * tokens, or a token twice) is refused before the handshake too (400 `BAD_REQUEST`,
 * `details.reason: "malformed-subprotocols"`, `details.supported`).
 */
import { Option } from "effect"

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

/** A subprotocol name: a token (RFC 9110 `tchar`s), as the socket server (`ws`) reads it. */
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
/** Tokens separated by commas, spaces or tabs around the commas only. */
const SUBPROTOCOL_LIST = new RegExp(`^${TOKEN}(?:[ \\t]*,[ \\t]*${TOKEN})*$`)

/**
 * The subprotocols a `Sec-WebSocket-Protocol` header offers, in order (none without the header),
 * or none at all when the header is malformed as the socket server (`ws`) reads it: empty, not
 * tokens separated by commas, or a token offered twice. Such an upgrade must be refused before the
 * socket server sees it: `ws` answers it with an HTML 400 of its own and never hands it back.
 */
export const offeredSubprotocols = (header: string | undefined): Option.Option<ReadonlyArray<string>> => {
  if (header === undefined) return Option.some([])
  if (!SUBPROTOCOL_LIST.test(header)) return Option.none()
  const offered = header.split(/[ \t]*,[ \t]*/)
  return new Set(offered).size === offered.length ? Option.some(offered) : Option.none()
}

/** `details.reason` of the 400 refusing a malformed `Sec-WebSocket-Protocol` header. */
export const MALFORMED_SUBPROTOCOLS = "malformed-subprotocols"
export const MALFORMED_SUBPROTOCOLS_MESSAGE =
  "Malformed Sec-WebSocket-Protocol header: offer subprotocol names (tokens) separated by commas, each once"
