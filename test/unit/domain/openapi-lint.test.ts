/**
 * Issue #16: what Redocly's recommended rules ask of the document (`npm run lint:openapi` runs the
 * linter itself in CI), and the response headers the server adds around every route.
 */
import { describe, expect, it } from "@effect/vitest"
import { openApiDocument } from "../../../src/domain/openapi.ts"

const doc: unknown = JSON.parse(JSON.stringify(openApiDocument()))

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const at = (value: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>((node, key) => (isRecord(node) ? node[key] : undefined), value)

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

const operations = Object.entries(
  isRecord(at(doc, "paths")) ? (at(doc, "paths") as Record<string, unknown>) : {}
).flatMap(([path, item]) =>
  Object.entries(isRecord(item) ? item : {})
    .filter(([method]) => METHODS.includes(method))
    .map(([method, operation]) => ({ path, method, operation }))
)

const responsesOf = (operation: unknown) =>
  Object.entries(isRecord(at(operation, "responses")) ? (at(operation, "responses") as Record<string, unknown>) : {})

describe("OpenAPI document: Redocly's recommended rules", () => {
  it("has every operation (about 30)", () => {
    expect(operations.length).toBeGreaterThanOrEqual(30)
  })

  it("gives every operation a summary and a unique operationId", () => {
    for (const { path, method, operation } of operations) {
      expect(at(operation, "summary"), `${method} ${path}`).toEqual(expect.stringMatching(/\S/))
    }
    const ids = operations.map(({ operation }) => at(operation, "operationId"))
    expect(new Set(ids).size).toBe(ids.length)
  })

  it("documents a 4xx answer on every operation", () => {
    for (const { path, method, operation } of operations) {
      expect(
        responsesOf(operation).some(([status]) => /^4\d\d$/.test(status)),
        `${method} ${path}`
      ).toBe(true)
    }
  })

  it("names a server, a license (with an SPDX identifier) and describes every tag", () => {
    expect(at(doc, "servers")).toEqual([expect.objectContaining({ url: "/" })])
    expect(at(doc, "info", "license")).toEqual({ name: "Proprietary", identifier: "LicenseRef-Proprietary" })
    const tags = at(doc, "tags")
    expect(Array.isArray(tags) && tags.length).toBeGreaterThanOrEqual(7)
    for (const tag of Array.isArray(tags) ? tags : []) {
      expect(at(tag, "description"), String(at(tag, "name"))).toEqual(expect.stringMatching(/\S/))
    }
  })
})

describe("OpenAPI document: JSON Schema", () => {
  it("names no schema resource twice: Effect's `$id: /schemas/unknown` markers are dropped", () => {
    const ids: Array<string> = []
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) return value.forEach(walk)
      if (!isRecord(value)) return
      if (typeof value["$id"] === "string") ids.push(value["$id"])
      Object.values(value).forEach(walk)
    }
    walk(doc)
    expect(ids).toEqual([])
    // The values themselves are still documented (any JSON).
    expect(
      at(doc, "components", "schemas", "NotFoundEnvelope", "properties", "error", "properties", "details")
    ).toEqual({
      title: "unknown"
    })
  })
})

describe("OpenAPI document: response headers", () => {
  const ref = (name: string) => ({ $ref: `#/components/headers/${name}` })

  it("declares the headers once, in components.headers", () => {
    expect(at(doc, "components", "headers", "X-Request-Id")).toMatchObject({
      required: true,
      schema: { type: "string" }
    })
    for (const name of ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]) {
      expect(at(doc, "components", "headers", name), name).toMatchObject({ schema: { type: "integer" } })
      expect(at(doc, "components", "headers", name, "required"), name).toBeUndefined()
    }
    expect(at(doc, "components", "headers", "Retry-After")).toMatchObject({
      required: true,
      schema: { type: "integer", minimum: 1 }
    })
  })

  it("X-Request-Id on every response; RateLimit-* on every response under /api/v1; Retry-After on every 429", () => {
    for (const { path, method, operation } of operations) {
      for (const [status, response] of responsesOf(operation)) {
        const where = `${method} ${path} ${status}`
        const headers = at(response, "headers")
        expect(at(headers, "X-Request-Id"), where).toEqual(ref("X-Request-Id"))
        const limited = path.startsWith("/api/v1/")
        for (const name of ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]) {
          expect(at(headers, name), `${where} ${name}`).toEqual(limited ? ref(name) : undefined)
        }
        expect(at(headers, "Retry-After"), where).toEqual(status === "429" ? ref("Retry-After") : undefined)
      }
    }
    // The health probes are not rate limited, and every /api/v1 operation may answer 429.
    expect(at(doc, "paths", "/health/ready", "get", "responses", "429")).toBeUndefined()
    for (const { path, method, operation } of operations.filter(({ path }) => path.startsWith("/api/v1/"))) {
      expect(at(operation, "responses", "429"), `${method} ${path}`).toBeDefined()
    }
  })

  it("keeps the 401's WWW-Authenticate next to them", () => {
    expect(at(doc, "paths", "/api/v1/users/me", "get", "responses", "401", "headers")).toMatchObject({
      "WWW-Authenticate": expect.anything(),
      "X-Request-Id": ref("X-Request-Id")
    })
  })
})

describe("OpenAPI document: paths the router cannot take", () => {
  it("every operation with a path parameter documents 404 ROUTE_NOT_FOUND; the others do not", () => {
    const routeNotFound = { $ref: "#/components/schemas/RouteNotFoundEnvelope" }
    expect(at(doc, "components", "schemas", "RouteNotFoundEnvelope")).toMatchObject({
      properties: { error: { properties: { code: { enum: ["ROUTE_NOT_FOUND"] } } } }
    })
    for (const { path, method, operation } of operations) {
      const schema = at(operation, "responses", "404", "content", "application/json", "schema")
      const listed = at(schema, "anyOf")
      const documented = Array.isArray(listed) ? listed : [schema]
      if (path.includes("{")) {
        expect(documented, `${method} ${path}`).toContainEqual(routeNotFound)
        expect(documented, `${method} ${path}`).toContainEqual({ $ref: "#/components/schemas/NotFoundEnvelope" })
      } else expect(documented, `${method} ${path}`).not.toContainEqual(routeNotFound)
    }
  })
})
