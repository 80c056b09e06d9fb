/** The client's address: the socket's peer, or with `TRUST_PROXY` hops the entry those proxies appended to X-Forwarded-For. */
import type { IncomingMessage } from "node:http"

export const forwardedAddress = (
  forwardedFor: string | undefined,
  socketAddress: string | undefined,
  trustedHops: number
): string => {
  const peer = socketAddress ?? "unknown"
  if (trustedHops <= 0 || forwardedFor === undefined) return peer
  const chain = forwardedFor
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
  // Each trusted proxy appended the address it saw; entries further left are the client's say-so.
  return chain[chain.length - trustedHops] ?? chain[0] ?? peer
}

export const clientAddress = (request: IncomingMessage, trustedHops: number): string => {
  const header = request.headers["x-forwarded-for"]
  return forwardedAddress(Array.isArray(header) ? header.join(",") : header, request.socket.remoteAddress, trustedHops)
}
