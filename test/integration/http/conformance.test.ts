/**
 * Issue #16: the conformance harness (test/support/conformance.setup.ts) is active in this suite:
 * `fetch` is wrapped, a deliberately wrong answer from a server on this machine is caught (then
 * taken, so that this test does not fail for it), the document it judges by is the one the server
 * serves at /openapi.json, and the server's real answers pass.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createServer, type Server } from "node:http"
import { openApiDocument } from "../../../src/domain/openapi.ts"
import { CONFORMANCE, notTheApiServer, takeViolations } from "../../support/conformance.setup.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

/** A server that answers every request with this status and JSON body: not the API. */
const wrongServer = (status: number, body: unknown) =>
  Effect.acquireRelease(
    Effect.async<{ server: Server; url: string }>((resume) => {
      const server = createServer((_request, response) => {
        response
          .writeHead(status, { "content-type": "application/json", "x-request-id": "fake" })
          .end(JSON.stringify(body))
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed({
            server,
            url: `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
          })
        )
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map(({ url }) => url))

const taken = Effect.promise(() => takeViolations())

describe("the conformance harness", () => {
  it.scoped("wraps fetch and catches an undocumented status and a body off its schema", () =>
    Effect.gen(function* () {
      expect(CONFORMANCE in globalThis.fetch).toBe(true)
      const teapot = yield* wrongServer(418, { success: false, error: { code: "TEAPOT", message: "short and stout" } })
      expect((yield* http(`${teapot}/api/v1/matches/abc`)).status).toBe(418)
      const offSchema = yield* wrongServer(404, { success: false, error: { code: "NOT_FOUND" } })
      expect((yield* http(`${offSchema}/api/v1/matches/abc`)).status).toBe(404)
      // Paths of no operation are not judged, nor servers marked as not the API.
      expect((yield* http(`${teapot}/not/an/operation`)).status).toBe(418)
      const probe = yield* wrongServer(404, { success: false, error: { code: "ROUTE_NOT_FOUND", message: "no" } })
      notTheApiServer(probe)
      expect((yield* http(`${probe}/api/v1/users/me`)).status).toBe(404)

      const found = yield* taken
      expect(found).toHaveLength(2)
      expect(found[0]).toMatchObject({
        method: "GET",
        path: "/api/v1/matches/abc",
        status: 418,
        operationId: "matches.get"
      })
      expect(found[0]!.problems).toEqual([expect.stringContaining("status 418 is not documented")])
      expect(found[1]).toMatchObject({ status: 404, operationId: "matches.get" })
      expect(found[1]!.problems).toEqual([expect.stringMatching(/does not match the documented schema.*message/)])
    })
  )

  it.live("judges by the very document the server serves, and the server's answers pass", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const served = yield* http(`${url}/openapi.json`)
      expect(served.status).toBe(200)
      expect(served.body).toEqual(JSON.parse(JSON.stringify(openApiDocument())))
      expect((yield* http(`${url}/api/v1/users/me`)).status).toBe(401)
      expect((yield* http(`${url}/health/live`)).status).toBe(200)
      // An id the router cannot take answers 404 ROUTE_NOT_FOUND, documented on every operation with a path parameter.
      const unroutable = yield* http(`${url}/api/v1/matches/${"a".repeat(300)}`)
      expect(unroutable.status).toBe(404)
      expect(unroutable.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
      expect(yield* taken).toEqual([])
    }).pipe(Effect.provide(testServer({ db: TestDb() })))
  )
})
