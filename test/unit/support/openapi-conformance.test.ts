/**
 * The conformance harness's judge (test/support/openapi-conformance.ts) on the real document: a
 * deliberate mismatch is reported (undocumented status, body off its schema, undocumented content
 * type, missing required header), a conforming answer is not, and an unknown path is not judged.
 */
import { describe, expect, it } from "@effect/vitest"
import { openApiDocument } from "../../../src/domain/openapi.ts"
import { makeConformance, type ObservedResponse } from "../../support/openapi-conformance.ts"

const conformance = makeConformance(JSON.parse(JSON.stringify(openApiDocument())))

const json = (
  status: number,
  body: unknown,
  headers: Record<string, string> = {}
): Omit<ObservedResponse, "method" | "path"> => ({
  status,
  headers: new Headers({ "content-type": "application/json", "x-request-id": "req-1", ...headers }),
  body: JSON.stringify(body)
})

const notFound = { success: false, error: { code: "NOT_FOUND", message: "No such match" } }

describe("the conformance judge", () => {
  it("finds the operation by method and path template; literal paths and unknown paths as they are", () => {
    expect(conformance.operationFor("GET", "/api/v1/matches/abc123")).toBe("matches.get")
    expect(conformance.operationFor("DELETE", "/api/v1/matches/abc123")).toBe("matches.delete")
    expect(conformance.operationFor("GET", "/api/v1/users/me/export")).toBe("users.exportMe")
    expect(conformance.operationFor("POST", "/api/v1/magic-openers/generate")).toBe("openers.generate")
    expect(conformance.operationFor("GET", "/api/v1/matches/abc/extra")).toBeUndefined()
    expect(conformance.operationFor("PUT", "/api/v1/matches/abc")).toBeUndefined()
    expect(conformance.operationFor("GET", "/openapi.json")).toBeUndefined()
  })

  it("passes a documented answer", () => {
    expect(conformance.check({ method: "GET", path: "/api/v1/matches/abc", ...json(404, notFound) })).toBeUndefined()
    expect(
      conformance.check({
        method: "DELETE",
        path: "/api/v1/matches/abc",
        status: 204,
        headers: new Headers({ "x-request-id": "req-1" }),
        body: ""
      })
    ).toBeUndefined()
  })

  it("reports an undocumented status", () => {
    const violation = conformance.check({ method: "GET", path: "/api/v1/matches/abc", ...json(418, notFound) })
    expect(violation).toMatchObject({
      method: "GET",
      path: "/api/v1/matches/abc",
      status: 418,
      operationId: "matches.get"
    })
    expect(violation?.problems).toEqual([expect.stringContaining("status 418 is not documented for matches.get")])
  })

  it("reports a body that violates the documented schema, with where and why", () => {
    const violation = conformance.check({
      method: "GET",
      path: "/api/v1/matches/abc",
      ...json(404, { success: false, error: { code: "NOT_A_CODE" } })
    })
    expect(violation?.status).toBe(404)
    expect(violation?.problems).toHaveLength(1)
    expect(violation?.problems[0]).toContain("does not match the documented schema")
    expect(violation?.problems[0]).toContain("/error")
    expect(violation?.problems[0]).toContain("message")
    // A success body with the wrong shape too.
    const ok = conformance.check({
      method: "GET",
      path: "/api/v1/matches/abc",
      ...json(200, { success: true, data: { id: 5 } })
    })
    expect(ok?.problems[0]).toContain("/data")
  })

  it("reports an undocumented content type, a body where none is documented, a missing required header", () => {
    const text = conformance.check({
      method: "GET",
      path: "/api/v1/matches/abc",
      status: 404,
      headers: new Headers({ "content-type": "text/plain", "x-request-id": "req-1" }),
      body: "not found"
    })
    expect(text?.problems).toEqual([expect.stringContaining("content-type text/plain is not documented")])
    const noContent = conformance.check({
      method: "DELETE",
      path: "/api/v1/matches/abc",
      status: 204,
      headers: new Headers({ "content-type": "application/json", "x-request-id": "req-1" }),
      body: "{}"
    })
    expect(noContent?.problems).toEqual([expect.stringContaining("where none is documented")])
    const noId = conformance.check({
      method: "GET",
      path: "/api/v1/matches/abc",
      status: 404,
      headers: new Headers({ "content-type": "application/json" }),
      body: JSON.stringify(notFound)
    })
    expect(noId?.problems).toEqual(["the required header X-Request-Id is missing"])
    const badRetry = conformance.check({
      method: "GET",
      path: "/api/v1/matches/abc",
      ...json(429, { success: false, error: { code: "RATE_LIMITED", message: "slow down" } }, { "retry-after": "soon" })
    })
    expect(badRetry?.problems).toEqual([expect.stringContaining("header Retry-After")])
  })

  it("judges an event stream by its content type only", () => {
    const stream = (contentType: string): ObservedResponse => ({
      method: "GET",
      path: "/api/v1/sessions/abc/events",
      status: 200,
      headers: new Headers({ "content-type": contentType, "x-request-id": "req-1" }),
      body: undefined
    })
    expect(conformance.check(stream("text/event-stream"))).toBeUndefined()
    expect(conformance.check(stream("application/json"))?.problems).toEqual([
      expect.stringContaining("content-type application/json is not documented")
    ])
  })
})
