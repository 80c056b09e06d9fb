/**
 * Bearer authentication over real HTTP: tokens signed with a test key, verified by the real
 * @clerk/backend; every rejection is a 401 envelope naming its reason.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { bearer, newClerkId, otherKeys, tokenFor } from "../../support/auth.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

const unauthorized = (reason: string) => ({
  success: false,
  error: { code: "UNAUTHORIZED", message: "Authentication failed", details: { reason } }
})

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("bearer authentication", (it) => {
  const me = (headers: Record<string, string>) =>
    Effect.flatMap(baseUrl, (url) => http(`${url}/api/v1/users/me`, { headers }))

  it.effect("a valid token answers 200 with the caller's user", () =>
    Effect.gen(function* () {
      const res = yield* me(bearer(tokenFor({ clerkId: newClerkId(), email: `ok-${Date.now()}@test.dev` })))
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({ success: true, data: { id: expect.any(String) } })
    })
  )

  const rejections: ReadonlyArray<readonly [string, () => Record<string, string>, string]> = [
    ["no Authorization header", () => ({}), "missing-token"],
    ["another scheme", () => ({ authorization: "Basic dXNlcjpwYXNz" }), "malformed-token"],
    ["a token that is not a JWT", () => bearer("not-a-jwt"), "malformed-token"],
    ["a JWT-shaped string that does not decode", () => bearer("aaaa.bbbb.cccc"), "token-invalid"],
    ["an expired token", () => bearer(tokenFor({ clerkId: newClerkId(), expiresIn: -120 })), "token-expired"],
    [
      "a token not valid yet",
      () => bearer(tokenFor({ clerkId: newClerkId(), notBefore: 600 })),
      "token-not-active-yet"
    ],
    [
      "a token signed with another key",
      () => bearer(tokenFor({ clerkId: newClerkId(), keys: otherKeys })),
      "token-invalid-signature"
    ],
    [
      "a signed token whose subject holds a NUL (no Clerk id does; PostgreSQL cannot look it up)",
      () => bearer(tokenFor({ clerkId: `${newClerkId()}\u0000` })),
      "token-invalid"
    ],
    [
      "a token for another party (azp)",
      () => bearer(tokenFor({ clerkId: newClerkId(), azp: "https://evil.example" })),
      "token-invalid-authorized-parties"
    ]
  ]

  for (const [name, headers, reason] of rejections) {
    it.effect(`${name} → 401 UNAUTHORIZED (${reason})`, () =>
      Effect.gen(function* () {
        const res = yield* me(headers())
        expect(res.status).toBe(401)
        expect(res.body).toEqual(unauthorized(reason))
      })
    )
  }

  it.effect("a bad token with a bad payload answers 401, not 400: authentication comes first", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* http(`${url}/api/v1/users/me`, {
        method: "PATCH",
        headers: { "content-type": "application/json", ...bearer("nope") },
        body: "{not json"
      })
      expect(res.status).toBe(401)
      expect(res.body).toEqual(unauthorized("malformed-token"))
    })
  )

  describe("a rejection never leaks the token", () => {
    it.effect("the body does not echo it", () =>
      Effect.gen(function* () {
        const token = tokenFor({ clerkId: newClerkId(), keys: otherKeys })
        const res = yield* me(bearer(token))
        expect(res.status).toBe(401)
        expect(res.text).not.toContain(token.slice(0, 20))
      })
    )
  })
})
