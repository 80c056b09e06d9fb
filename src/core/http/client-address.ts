/** The client's address: the socket's peer, or with `TRUST_PROXY` hops the entry those proxies appended to X-Forwarded-For. */
import type { IncomingMessage } from "node:http"

/** IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address, and case never matters: one client, one key. */
const normalize = (address: string): string => {
  const trimmed = address.trim()
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(trimmed) ? trimmed.slice(7) : trimmed.toLowerCase()
}

export const forwardedAddress = (
  forwardedFor: string | undefined,
  socketAddress: string | undefined,
  trustedHops: number
): string => {
  const peer = normalize(socketAddress ?? "unknown")
  if (trustedHops <= 0 || forwardedFor === undefined) return peer
  const chain = forwardedFor
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
  // Each trusted proxy appended the address it saw; entries further left are the client's say-so.
  const entry = chain[chain.length - trustedHops] ?? chain[0]
  return entry === undefined ? peer : normalize(entry)
}

export const clientAddress = (request: IncomingMessage, trustedHops: number): string => {
  const header = request.headers["x-forwarded-for"]
  return forwardedAddress(Array.isArray(header) ? header.join(",") : header, request.socket.remoteAddress, trustedHops)
}
