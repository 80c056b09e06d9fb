/** The client's address for rate limits: the socket's, or X-Forwarded-For as far as TRUST_PROXY hops allow. */
import { describe, expect, it } from "vitest"
import { forwardedAddress } from "../../../../src/core/http/client-address.ts"

describe("forwardedAddress", () => {
  it("ignores X-Forwarded-For without trusted hops; IPv4-mapped IPv6 is the IPv4 address", () => {
    expect(forwardedAddress("203.0.113.7", "::ffff:127.0.0.1", 0)).toBe("127.0.0.1")
    expect(forwardedAddress(undefined, "2001:DB8::1", 2)).toBe("2001:db8::1")
    expect(forwardedAddress(undefined, undefined, 0)).toBe("unknown")
  })

  it("takes the entry the outermost trusted proxy appended, not the client's own claims", () => {
    expect(forwardedAddress("198.51.100.1, 203.0.113.7", "10.0.0.2", 1)).toBe("203.0.113.7")
    expect(forwardedAddress("198.51.100.1, 203.0.113.7, 10.0.0.9", "10.0.0.2", 2)).toBe("203.0.113.7")
    // Fewer entries than hops: the leftmost one; an empty header: the socket's address.
    expect(forwardedAddress("::ffff:203.0.113.7", "10.0.0.2", 3)).toBe("203.0.113.7")
    expect(forwardedAddress(" , ", "10.0.0.2", 1)).toBe("10.0.0.2")
  })
})
