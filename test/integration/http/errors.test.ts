/**
 * Every failure the server can produce answers with the envelope and the right status, over
 * real HTTP, through the same router, builder and middleware as production routes.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { request as rawRequest } from "node:http"
import { TestDb } from "../../support/database.ts"
import { failure, http, postJson } from "../../support/http.ts"
import { ProbeRoutes, SECRET_DEFECT_TEXT } from "../../support/probe-api.ts"
import { baseUrl, testServer } from "../../support/server.ts"

/** Sends a body without content-length (chunked), for the limit that applies while reading. */
const postChunked = (url: string, chunks: ReadonlyArray<Buffer>) =>
  Effect.async<{ status: number; body: unknown } | { error: string }>((resume) => {
    const req = rawRequest(url, { method: "POST", headers: { "content-type": "application/json" } }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (text += chunk))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: JSON.parse(text) })))
    })
    req.on("error", (error) => resume(Effect.succeed({ error: error.message })))
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })

layer(testServer({ db: TestDb(), routes: ProbeRoutes }), { timeout: 60_000 })("HTTP failures", (it) => {
  it.effect("a valid request gets the success envelope", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* postJson(`${url}/api/v1/probe/echo`, JSON.stringify({ name: "Ada", age: 36 }))
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ success: true, data: { name: "Ada", age: 36 } })
    })
  )

  it.effect("schema failures → 400 VALIDATION_ERROR with one issue per field", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* postJson(`${url}/api/v1/probe/echo`, JSON.stringify({ name: "", age: 12 }))
      expect(res.status).toBe(400)
      expect(res.body).toEqual({
        success: false,
        error: {
          code: "VALIDATION_ERROR",
          message: "The request is invalid: see details.issues",
          details: {
            issues: [
              { path: "name", message: expect.stringContaining("at least 1 character") },
              { path: "age", message: expect.stringContaining("between 18 and 120") }
            ]
          }
        }
      })
    })
  )

  it.effect("a missing field is named", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* postJson(`${url}/api/v1/probe/echo`, JSON.stringify({ name: "Ada" }))
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({
        success: false,
        error: { code: "VALIDATION_ERROR", details: { issues: [{ path: "age", message: "is missing" }] } }
      })
    })
  )

  it.effect("malformed JSON → 400 INVALID_JSON", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* postJson(`${url}/api/v1/probe/echo`, '{"name": "Ada", ')
      expect(res.status).toBe(400)
      expect(res.body).toEqual({
        success: false,
        error: { code: "INVALID_JSON", message: "The request body is not valid JSON" }
      })
    })
  )

  it.effect("a body over 10 MB → 413 PAYLOAD_TOO_LARGE, not read", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const big = JSON.stringify({ name: "x".repeat(10 * 1024 * 1024 + 1), age: 30 })
      const res = yield* postJson(`${url}/api/v1/probe/echo`, big)
      expect(res.status).toBe(413)
      expect(res.body).toEqual({
        success: false,
        error: {
          code: "PAYLOAD_TOO_LARGE",
          message: "The request body is larger than 10485760 bytes",
          details: { maxBytes: 10485760 }
        }
      })
    })
  )

  it.effect("a chunked body over the limit is cut while reading: 413 or a reset, never a 2xx or a 500", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const chunk = Buffer.alloc(1024 * 1024, 0x20)
      const outcome = yield* postChunked(
        `${url}/api/v1/probe/echo`,
        Array.from({ length: 11 }, () => chunk)
      )
      if ("error" in outcome) {
        expect(outcome.error).toMatch(/EPIPE|ECONNRESET|socket hang up/)
      } else {
        expect(outcome.status).toBe(413)
        expect(outcome.body).toMatchObject({ success: false, error: { code: "PAYLOAD_TOO_LARGE" } })
      }
    })
  )

  it.effect("a body that is not JSON → 415 UNSUPPORTED_MEDIA_TYPE, never handed to the schema", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      // A `+json` type too: the framework parses only application/json, and read such a body as bytes
      // once it had been read (a request that never got an answer before).
      for (const contentType of [
        "text/plain",
        "application/octet-stream",
        "application/x-www-form-urlencoded",
        "application/merge-patch+json",
        "application/vnd.api+json; charset=utf-8"
      ]) {
        const res = yield* http(`${url}/api/v1/probe/echo`, {
          method: "POST",
          headers: { "content-type": contentType },
          body: "name=Ada&age=36"
        })
        expect(res.status, contentType).toBe(415)
        expect(res.body).toEqual({
          success: false,
          error: {
            code: "UNSUPPORTED_MEDIA_TYPE",
            message: "Request bodies must be JSON (Content-Type: application/json)",
            details: { contentType }
          }
        })
      }
      const json = yield* postJson(`${url}/api/v1/probe/echo`, JSON.stringify({ name: "Ada", age: 36 }), {
        "content-type": "application/json; charset=utf-8"
      })
      expect(json.status).toBe(200)
    })
  )

  it.effect("a body whose bytes are not UTF-8 → 400 INVALID_JSON, never stored as U+FFFD", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const withName = (name: ReadonlyArray<number>) =>
        http(`${url}/api/v1/probe/echo`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: Buffer.concat([Buffer.from('{"name":"x'), Buffer.from(name), Buffer.from('","age":36}')])
        })
      // Bytes that are never UTF-8, an overlong "/", an encoded surrogate, a cut 3-byte and a cut
      // 4-byte sequence (the last decodes to one U+FFFD of the same length: a length check misses it).
      for (const bad of [
        [0xff, 0xfe],
        [0xc0, 0xaf],
        [0xed, 0xa0, 0x80],
        [0xe2, 0x82],
        [0xf0, 0x9f, 0x98]
      ]) {
        const res = yield* withName(bad)
        expect(res.status, JSON.stringify(bad)).toBe(400)
        expect(res.body).toEqual(failure("INVALID_JSON", "The request body is not valid JSON"))
      }
      // Well-formed: an emoji, and U+FFFD itself as the user typed it.
      for (const good of ["😀", "\uFFFD"]) {
        const res = yield* withName([...Buffer.from(good)])
        expect(res.status, good).toBe(200)
        expect(res.body).toEqual({ success: true, data: { name: `x${good}`, age: 36 } })
      }
    })
  )

  it.effect("unknown route → 404 ROUTE_NOT_FOUND", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* http(`${url}/api/v1/nope?token=secret`)
      expect(res.status).toBe(404)
      expect(res.body).toEqual({
        success: false,
        error: { code: "ROUTE_NOT_FOUND", message: "No route for GET /api/v1/nope" }
      })
    })
  )

  it.effect("wrong method → 404 envelope", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* http(`${url}/api/v1/probe/echo`, { method: "DELETE" })
      expect(res.status).toBe(404)
      expect(res.body).toEqual({
        success: false,
        error: { code: "ROUTE_NOT_FOUND", message: "No route for DELETE /api/v1/probe/echo" }
      })
    })
  )

  it.effect("a defect → 500 INTERNAL_ERROR, details never sent", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const res = yield* http(`${url}/api/v1/probe/defect`)
      expect(res.status).toBe(500)
      expect(res.body).toEqual({
        success: false,
        error: { code: "INTERNAL_ERROR", message: "An unexpected error occurred" }
      })
      expect(res.text).not.toContain("hunter2")
      expect(res.text).not.toContain(SECRET_DEFECT_TEXT)
    })
  )

  describe("headers", () => {
    it.effect("security headers are set and x-powered-by is absent", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const res = yield* http(`${url}/health/live`)
        expect(res.status).toBe(200)
        expect(res.headers.get("x-content-type-options")).toBe("nosniff")
        expect(res.headers.get("x-frame-options")).toBe("DENY")
        expect(res.headers.get("x-powered-by")).toBeNull()
      })
    )

    it.effect("a sane x-request-id is echoed; an insane one is replaced", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const kept = yield* http(`${url}/health/live`, { headers: { "x-request-id": "req-123.abc" } })
        expect(kept.headers.get("x-request-id")).toBe("req-123.abc")
        const replaced = yield* http(`${url}/health/live`, { headers: { "x-request-id": "<script>alert(1)</script>" } })
        expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
        const generated = yield* http(`${url}/health/live`)
        expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
      })
    )

    it.effect("errors carry the request id and security headers too", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const res = yield* http(`${url}/nowhere`, { headers: { "x-request-id": "abc" } })
        expect(res.status).toBe(404)
        expect(res.headers.get("x-request-id")).toBe("abc")
        expect(res.headers.get("x-content-type-options")).toBe("nosniff")
      })
    )

    it.effect("no CORS headers when no origin is configured", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const res = yield* http(`${url}/health/live`, { headers: { origin: "https://evil.example" } })
        expect(res.headers.get("access-control-allow-origin")).toBeNull()
      })
    )
  })
})

layer(testServer({ db: TestDb(), config: { CORS_ORIGINS: "https://app.wingmate.test" } }), { timeout: 60_000 })(
  "CORS from configuration",
  (it) => {
    it.effect("a configured origin is allowed, preflight included; others are not", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const allowed = yield* http(`${url}/health/live`, { headers: { origin: "https://app.wingmate.test" } })
        expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.wingmate.test")
        const preflight = yield* http(`${url}/api/v1/anything`, {
          method: "OPTIONS",
          headers: { origin: "https://app.wingmate.test", "access-control-request-method": "POST" }
        })
        expect(preflight.status).toBe(204)
        expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.wingmate.test")
        const denied = yield* http(`${url}/health/live`, { headers: { origin: "https://evil.example" } })
        expect(denied.headers.get("access-control-allow-origin")).toBeNull()
      })
    )
  }
)
