import { describe, expect, it } from "@effect/vitest"
import { Option, Redacted } from "effect"
import { adminDecision, presentedCredential } from "../../../../src/core/http/admin.ts"

const TOKEN = "a".repeat(40)
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`

describe("the operator routes' admin rule", () => {
  it("the credential is a bearer token or the password of HTTP Basic (any user name)", () => {
    expect(presentedCredential(`Bearer ${TOKEN}`)).toBe(TOKEN)
    expect(presentedCredential(`bearer  ${TOKEN} `)).toBe(TOKEN)
    expect(presentedCredential(basic("ops", TOKEN))).toBe(TOKEN)
    expect(presentedCredential(basic("", "p:with:colons"))).toBe("p:with:colons")
    expect(presentedCredential(undefined)).toBeUndefined()
    expect(presentedCredential("Basic bm9jb2xvbg==")).toBeUndefined()
    expect(presentedCredential("Digest abc")).toBeUndefined()
  })

  it("with ADMIN_TOKEN: only that token; without: open in development, off in production", () => {
    const guarded = { adminToken: Option.some(Redacted.make(TOKEN)), isProduction: true }
    expect(adminDecision(guarded, `Bearer ${TOKEN}`)).toBe("allowed")
    expect(adminDecision(guarded, basic("x", TOKEN))).toBe("allowed")
    expect(adminDecision(guarded, undefined)).toBe("unauthorized")
    expect(adminDecision(guarded, `Bearer ${TOKEN}x`)).toBe("unauthorized")
    expect(adminDecision(guarded, `Bearer ${TOKEN.slice(1)}`)).toBe("unauthorized")
    expect(adminDecision(guarded, "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")).toBe("unauthorized")
    expect(adminDecision({ ...guarded, isProduction: false }, undefined)).toBe("unauthorized")
    expect(adminDecision({ adminToken: Option.none(), isProduction: false }, undefined)).toBe("allowed")
    expect(adminDecision({ adminToken: Option.none(), isProduction: true }, `Bearer ${TOKEN}`)).toBe("off")
  })
})
