/** The OpenAPI document describes exactly the envelopes the server sends. */
import { describe, expect, it } from "@effect/vitest"
import { OpenApi } from "@effect/platform"
import { WingmateApi } from "../../../src/domain/api.ts"
import { ErrorCatalog } from "../../../src/domain/errors.ts"

const doc: unknown = JSON.parse(JSON.stringify(OpenApi.fromApi(WingmateApi)))

/** Walks the JSON document; undefined where the path does not exist. */
const at = (value: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>(
    (node, key) => (typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined),
    value
  )

const entries = (value: unknown): Array<[string, unknown]> =>
  typeof value === "object" && value !== null ? Object.entries(value) : []

const refName = (schema: unknown): string | undefined => {
  const ref = at(schema, "$ref")
  return typeof ref === "string" ? ref.replace("#/components/schemas/", "") : undefined
}

const schemas = at(doc, "components", "schemas")
const responseSchema = (path: string, status: string) =>
  at(doc, "paths", path, "get", "responses", status, "content", "application/json", "schema")

describe("OpenAPI document", () => {
  it("documents the success envelope { success: true, data }", () => {
    expect(responseSchema("/health/live", "200")).toMatchObject({
      type: "object",
      required: ["success", "data"],
      properties: {
        success: { type: "boolean", enum: [true] },
        data: { type: "object", required: ["status", "uptimeSeconds"] }
      }
    })
  })

  it("documents GET /metrics: Prometheus text, 401 with its challenge, 404 when off", () => {
    const responses = at(doc, "paths", "/metrics", "get", "responses")
    expect(at(responses, "200", "content", "text/plain", "schema")).toMatchObject({
      type: "string"
    })
    expect(refName(at(responses, "401", "content", "application/json", "schema"))).toBe("UnauthorizedEnvelope")
    expect(at(responses, "401", "headers", "WWW-Authenticate")).toBeDefined()
    expect(refName(at(responses, "404", "content", "application/json", "schema"))).toBe("NotFoundEnvelope")
  })

  it("documents each error as the failure envelope with its code and status", () => {
    expect(refName(responseSchema("/health/ready", "503"))).toBe("ServiceUnavailableEnvelope")
    expect(refName(responseSchema("/health/ready", "500"))).toBe("InternalErrorEnvelope")
    expect(at(schemas, "ServiceUnavailableEnvelope")).toMatchObject({
      type: "object",
      required: ["success", "error"],
      properties: {
        success: { type: "boolean", enum: [false] },
        error: {
          type: "object",
          required: ["code", "message"],
          properties: { code: { type: "string", enum: ["SERVICE_UNAVAILABLE"] }, message: { type: "string" } }
        }
      }
    })
  })

  it("documents validation failures as 400 VALIDATION_ERROR with per-field issues, not the framework's shape", () => {
    const badRequest = responseSchema("/health/ready", "400")
    expect(badRequest).toMatchObject({
      anyOf: expect.arrayContaining([{ $ref: "#/components/schemas/ValidationErrorEnvelope" }])
    })
    expect(at(schemas, "ValidationErrorEnvelope")).toMatchObject({
      properties: {
        error: {
          properties: {
            code: { enum: ["VALIDATION_ERROR"] },
            details: { properties: { issues: { type: "array" } } }
          }
        }
      }
    })
    expect(entries(schemas).map(([name]) => name)).not.toContain("HttpApiDecodeError")
  })

  it("protected endpoints declare the bearer scheme; health and webhooks do not", () => {
    expect(at(doc, "components", "securitySchemes", "bearer")).toMatchObject({ type: "http", scheme: "bearer" })
    for (const method of ["get", "patch", "delete"]) {
      expect(at(doc, "paths", "/api/v1/users/me", method, "security"), method).toEqual([{ bearer: [] }])
    }
    expect(at(doc, "paths", "/health/ready", "get", "security")).toEqual([])
    expect(at(doc, "paths", "/api/v1/webhooks/clerk", "post", "security")).toEqual([])
    expect(
      refName(at(doc, "paths", "/api/v1/users/me", "get", "responses", "401", "content", "application/json", "schema"))
    ).toBe("UnauthorizedEnvelope")
  })

  it("the openers generation documents both answers: the JSON envelope and the event stream", () => {
    const content = at(doc, "paths", "/api/v1/magic-openers/generate", "post", "responses", "200", "content")
    expect(entries(content).map(([type]) => type)).toEqual(["application/json", "text/event-stream"])
    expect(JSON.stringify(at(content, "text/event-stream", "schema"))).toContain('"enum":["done"]')
  })

  it("every documented error code comes from the catalog, with the catalog's status", () => {
    let checked = 0
    for (const [path, item] of entries(at(doc, "paths"))) {
      for (const [status, response] of ["get", "post", "patch", "delete"].flatMap((method) =>
        entries(at(item, method, "responses"))
      )) {
        if (Number(status) < 400) continue
        const schema = at(response, "content", "application/json", "schema")
        const anyOf = at(schema, "anyOf")
        const refs = Array.isArray(anyOf) ? anyOf.map(refName) : [refName(schema)]
        for (const ref of refs) {
          const code = at(schemas, ref ?? "", "properties", "error", "properties", "code", "enum", "0")
          expect(typeof code, `${path} ${status}`).toBe("string")
          const entry = Object.entries(ErrorCatalog).find(([catalogCode]) => catalogCode === code)?.[1]
          expect(entry?.status, `${path} ${status} ${String(code)}`).toBe(Number(status))
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThan(5)
  })

  it("documents uploads: 201 ticket envelope, 413 and 415 on create, 404 on read, bearer on both", () => {
    const create = at(doc, "paths", "/api/v1/uploads", "post")
    expect(at(create, "security")).toEqual([{ bearer: [] }])
    expect(at(create, "responses", "201", "content", "application/json", "schema")).toMatchObject({
      required: ["success", "data"],
      properties: { data: { $ref: "#/components/schemas/UploadTicket" } }
    })
    const errorOf = (operation: unknown, status: string) =>
      refName(at(operation, "responses", status, "content", "application/json", "schema"))
    expect(errorOf(create, "413")).toBe("PayloadTooLargeEnvelope")
    expect(errorOf(create, "415")).toBe("UnsupportedMediaTypeEnvelope")
    expect(at(schemas, "CreateUpload", "required")).toEqual(["contentType", "contentLength", "purpose"])
    expect(at(schemas, "UploadTicket", "properties", "method")).toEqual({ type: "string", enum: ["PUT"] })

    const read = at(doc, "paths", "/api/v1/uploads/{uploadId}", "get")
    expect(at(read, "security")).toEqual([{ bearer: [] }])
    // A missing upload, or an id the router cannot take (ROUTE_NOT_FOUND).
    const notFound = at(read, "responses", "404", "content", "application/json", "schema", "anyOf")
    expect(Array.isArray(notFound) ? notFound.map(refName) : notFound).toEqual([
      "NotFoundEnvelope",
      "RouteNotFoundEnvelope"
    ])
    expect(at(schemas, "UploadStatus")).toMatchObject({
      enum: ["pending", "verified", "rejected", "expired", "used"]
    })
  })

  it("types `limit` on every list as an integer in 1..100 (default 20), not the query string's text", () => {
    for (const path of ["/api/v1/matches", "/api/v1/magic-openers", "/api/v1/sessions"]) {
      const parameters = at(doc, "paths", path, "get", "parameters")
      const limit = Array.isArray(parameters) ? parameters.find((p) => at(p, "name") === "limit") : undefined
      expect(limit, path).toMatchObject({ in: "query", required: false })
      expect(at(limit, "schema"), path).toEqual({ type: "integer", minimum: 1, maximum: 100, default: 20 })
    }
  })

  it("documents both dislike bodies as optional: the server accepts none", () => {
    for (const path of [
      "/api/v1/magic-openers/{openerId}/dislike",
      "/api/v1/sessions/{sessionId}/suggestions/{suggestionId}/dislike"
    ]) {
      const body = at(doc, "paths", path, "post", "requestBody")
      expect(at(body, "required"), path).toBe(false)
      expect(at(body, "content", "application/json", "schema"), path).toEqual({
        anyOf: [{ $ref: "#/components/schemas/DislikeOpener" }, { type: "null" }]
      })
    }
  })

  it("documents the sessions list's matchId filter", () => {
    const parameters = at(doc, "paths", "/api/v1/sessions", "get", "parameters")
    const matchId = Array.isArray(parameters) ? parameters.find((p) => at(p, "name") === "matchId") : undefined
    expect(matchId).toMatchObject({
      in: "query",
      required: false,
      description: expect.stringContaining("this match"),
      schema: { type: "string", pattern: "^[A-Za-z0-9]{1,64}$" }
    })
  })

  it("every documented 401 declares the WWW-Authenticate challenge; other answers do not", () => {
    let checked = 0
    for (const [path, item] of entries(at(doc, "paths"))) {
      for (const [method, operation] of entries(item)) {
        for (const [status, response] of entries(at(operation, "responses"))) {
          const header = at(response, "headers", "WWW-Authenticate")
          if (status === "401") {
            expect(header, `${method} ${path}`).toMatchObject({ schema: { type: "string" } })
            checked++
          } else {
            expect(header, `${method} ${path} ${status}`).toBeUndefined()
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(10)
    expect(at(doc, "paths", "/health/ready", "get", "responses", "401")).toBeUndefined()
  })
})

describe("OpenAPI: the streamed operations (Server-Sent Events)", () => {
  const streamed = [
    {
      path: "/api/v1/magic-openers/generate",
      method: "post",
      json: "GenerationResult",
      events: ["delta", "done", "blocked", "final", "failed"]
    },
    {
      path: "/api/v1/sessions/{sessionId}/suggestions",
      method: "post",
      json: "SuggestionBatch",
      events: ["delta", "suggestion", "blocked", "final", "failed"]
    },
    {
      path: "/api/v1/sessions/{sessionId}/events",
      method: "get",
      json: undefined,
      events: [
        "snapshot",
        "status",
        "lines",
        "transcript",
        "delta",
        "suggestion",
        "blocked",
        "completed",
        "failed",
        "cancelled"
      ]
    }
  ] as const

  /** Every `$ref` under the node. */
  const refs = (node: unknown): Array<string> =>
    typeof node !== "object" || node === null
      ? []
      : [
          ...(typeof at(node, "$ref") === "string" ? [String(at(node, "$ref"))] : []),
          ...Object.values(node).flatMap(refs)
        ]

  for (const { path, method, json, events } of streamed) {
    it(`${method.toUpperCase()} ${path}: the JSON 200 alone is the envelope; the event stream is documented apart`, () => {
      const operation = at(doc, "paths", path, method)
      const content = at(operation, "responses", "200", "content")
      if (json === undefined) {
        expect(Object.keys(content as object)).toEqual(["text/event-stream"])
      } else {
        // No `string | envelope` union: the JSON schema is the envelope of the result, nothing else.
        expect(at(content, "application/json", "schema")).toEqual({
          type: "object",
          required: ["success", "data"],
          properties: { success: { type: "boolean", enum: [true] }, data: { $ref: `#/components/schemas/${json}` } },
          additionalProperties: false
        })
      }
      const stream = at(content, "text/event-stream", "schema")
      expect(stream).toMatchObject({ type: "array", description: expect.stringContaining("retry:") })
      const items = at(stream, "items", "oneOf")
      const documented = Array.isArray(items) ? items : []
      expect(documented.map((item) => at(item, "properties", "event", "enum"))).toEqual(events.map((e) => [e]))
      for (const item of documented) {
        // Each event: described, `{id, event, data}`, its data a real (object) JSON Schema.
        expect(item).toMatchObject({
          type: "object",
          description: expect.any(String),
          required: ["id", "event", "data"],
          properties: { id: { type: "string" } }
        })
        const data = at(item, "properties", "data")
        const named = refName(data)
        expect(named === undefined ? at(data, "type") : at(schemas, named, "type")).toBe("object")
      }
      // Every schema the stream references exists in the components.
      for (const ref of refs(stream)) {
        expect(at(schemas, ref.replace("#/components/schemas/", "")), ref).toBeDefined()
      }
      // A reconnect: the Last-Event-ID header, and the 204 that tells an EventSource to stop.
      const parameters = at(operation, "parameters")
      const lastEventId = Array.isArray(parameters)
        ? parameters.find((p) => at(p, "name") === "Last-Event-ID")
        : undefined
      expect(lastEventId).toMatchObject({ in: "header", required: false, schema: { type: "string" } })
      expect(at(operation, "responses", "204")).toMatchObject({ description: expect.stringContaining("reconnect") })
    })
  }

  it("terminal events carry the final summary", () => {
    const data = (path: string, method: string, event: string) => {
      const items = at(doc, "paths", path, method, "responses", "200", "content", "text/event-stream", "schema")
      const oneOf = at(items, "items", "oneOf")
      const item = (Array.isArray(oneOf) ? oneOf : []).find((i) => at(i, "properties", "event", "enum", "0") === event)
      return at(item, "properties", "data")
    }
    expect(data("/api/v1/sessions/{sessionId}/events", "get", "completed")).toMatchObject({
      required: ["suggestions", "costMicros"],
      properties: { suggestions: { type: "array", items: { $ref: "#/components/schemas/SessionSuggestion" } } }
    })
    expect(data("/api/v1/magic-openers/generate", "post", "final")).toMatchObject({
      required: expect.arrayContaining(["batchId", "usage", "costMicros", "openers"])
    })
    expect(data("/api/v1/sessions/{sessionId}/suggestions", "post", "final")).toEqual({
      $ref: "#/components/schemas/SuggestionBatch"
    })
  })
})
