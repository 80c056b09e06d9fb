/**
 * The interactive reference through the real server: a small page with no inline script under a
 * strict Content-Security-Policy, the viewer's bundle as a static script, both rate limited per
 * address, and nothing at all with API_DOCS_ENABLED=false.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

const get = (path: string) => Effect.flatMap(baseUrl, (url) => http(`${url}${path}`))

const directives = (csp: string | null) =>
  new Map(
    (csp ?? "")
      .split(";")
      .map((part) => part.trim().split(/\s+/) as [string, ...Array<string>])
      .map(([name, ...values]) => [name, values])
  )

describe("/docs", () => {
  it.live("a small page whose only script is this origin's bundle, under a CSP with no inline or eval'd script", () =>
    Effect.gen(function* () {
      const page = yield* get("/docs")
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toContain("text/html")
      expect(page.text.length).toBeLessThan(4_096)
      // Every <script> either has no body or is an external one from this origin.
      const scripts = [...page.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)]
      expect(scripts.length).toBeGreaterThan(0)
      for (const [, attributes, body] of scripts) {
        expect(body!.trim()).toBe("")
        const src = /src="([^"]+)"/.exec(attributes!)?.[1]
        if (src !== undefined) expect(src).toMatch(/^\/[^/]/)
      }
      const csp = directives(page.headers.get("content-security-policy"))
      expect(csp.get("default-src")).toEqual(["'none'"])
      // This origin's scripts and WebAssembly; never 'unsafe-eval' or 'unsafe-inline' for scripts.
      expect(csp.get("script-src")).toEqual(["'self'", "'wasm-unsafe-eval'"])
      expect(csp.get("frame-ancestors")).toEqual(["'none'"])
      expect(csp.get("base-uri")).toEqual(["'none'"])

      const bundle = yield* get("/docs/scalar.js")
      expect(bundle.status).toBe(200)
      expect(bundle.headers.get("content-type")).toContain("text/javascript")
      expect(bundle.text.length).toBeGreaterThan(100_000)
      expect(bundle.headers.get("cache-control")).toContain("max-age")
      // The document the page points at is there.
      expect(page.text).toContain('data-url="/openapi.json"')
      expect((yield* get("/openapi.json")).status).toBe(200)
    }).pipe(Effect.provide(testServer({ db: TestDb() })))
  )

  it.live("JSON answers carry a deny-all CSP of their own", () =>
    Effect.gen(function* () {
      const res = yield* get("/health/live")
      expect(directives(res.headers.get("content-security-policy")).get("default-src")).toEqual(["'none'"])
    }).pipe(Effect.provide(testServer({ db: TestDb() })))
  )

  it.live("rate limited per address (RATE_LIMIT_DOCS_IP), the page, its script and the document alike", () =>
    Effect.gen(function* () {
      const answers = yield* Effect.forEach(["/docs", "/docs/scalar.js", "/openapi.json", "/docs"], get)
      expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 429])
      expect(answers[3]!.body).toMatchObject({ success: false, error: { code: "RATE_LIMITED" } })
      expect(Number(answers[3]!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
      // Health probes are never limited.
      expect((yield* get("/health/live")).status).toBe(200)
    }).pipe(
      Effect.provide(testServer({ db: TestDb(), config: { RATE_LIMIT_ENABLED: "true", RATE_LIMIT_DOCS_IP: "3/60s" } }))
    )
  )

  it.live("API_DOCS_ENABLED=false: /docs and its script are unknown routes", () =>
    Effect.gen(function* () {
      for (const path of ["/docs", "/docs/scalar.js"]) {
        const res = yield* get(path)
        expect(res.status).toBe(404)
        expect(res.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
      }
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: { API_DOCS_ENABLED: "false" } })))
  )
})
