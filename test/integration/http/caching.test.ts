/**
 * Private answers are never stored by a cache: through the real server, every answer to a request
 * with credentials says `Cache-Control: no-store` and `Vary: Authorization`, whatever its route
 * set, failures included; public answers default to no-store unless their route says otherwise.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { bearer, newClerkId, otherKeys, tokenFor } from "../../support/auth.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

const get = (path: string, headers: Record<string, string> = {}) =>
  Effect.flatMap(baseUrl, (url) => http(`${url}${path}`, { headers }))

const caching = (res: { readonly headers: Headers }) => ({
  cacheControl: res.headers.get("cache-control"),
  vary: res.headers.get("vary")
})

describe("Cache-Control", () => {
  it.live("answers to requests with credentials: no-store and Vary: Authorization, successes and failures", () =>
    Effect.gen(function* () {
      const auth = bearer(tokenFor({ clerkId: newClerkId("cache") }))
      const me = yield* get("/api/v1/users/me", auth)
      expect(me.status).toBe(200)
      expect(caching(me)).toEqual({ cacheControl: "no-store", vary: "Authorization" })
      const missing = yield* get("/api/v1/matches/cm0000000000000000000000", auth)
      expect(missing.status).toBe(404)
      expect(caching(missing)).toEqual({ cacheControl: "no-store", vary: "Authorization" })
      const refused = yield* get("/api/v1/users/me", bearer(tokenFor({ clerkId: newClerkId(), keys: otherKeys })))
      expect(refused.status).toBe(401)
      expect(caching(refused)).toEqual({ cacheControl: "no-store", vary: "Authorization" })
      // Even a route that allows caching (the docs' script) is not stored when credentials came with it.
      expect(caching(yield* get("/docs/scalar.js", auth)).cacheControl).toBe("no-store")
    }).pipe(Effect.provide(testServer({ db: TestDb() })))
  )

  it.live("public answers: no-store unless their route allows caching; Vary keeps what CORS put there", () =>
    Effect.gen(function* () {
      expect(caching(yield* get("/health/live"))).toEqual({ cacheControl: "no-store", vary: null })
      expect(caching(yield* get("/api/v1/users/me")).cacheControl).toBe("no-store")
      expect(caching(yield* get("/docs/scalar.js")).cacheControl).toBe("public, max-age=3600")
      const cors = yield* get("/api/v1/users/me", {
        ...bearer(tokenFor({ clerkId: newClerkId() })),
        origin: "https://app.example"
      })
      expect(cors.headers.get("vary")?.split(/\s*,\s*/)).toEqual(expect.arrayContaining(["Authorization"]))
      expect(cors.headers.get("vary")?.match(/authorization/gi)).toHaveLength(1)
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: { CORS_ORIGINS: "https://app.example" } })))
  )
})
