/**
 * Property-based: every operation of the OpenAPI document (read from the running server, so a new
 * route is covered without editing this file) gets generated path parameters, queries and bodies:
 * valid shapes with hostile strings, wrong types, deep nesting, huge arrays. Whatever comes in,
 * the answer is never a 5xx, always the envelope, and the server stays live. A failing run prints
 * its seed and counterexample (replay with `{ seed, path }` in the property's parameters).
 */
import { fc, test } from "@fast-check/vitest"
import { ManagedRuntime } from "effect"
import { afterAll, expect } from "vitest"
import { ErrorCatalog } from "../../../src/domain/errors.ts"
import { TestDb } from "../../support/database.ts"
import {
  envelopeProblem,
  encodeParam,
  hostileJsonText,
  hostileString,
  type JsonSchema,
  isRecord
} from "../../support/hostile.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"
import { TEST_WEBHOOK_SECRET } from "../../support/webhooks.ts"

const runtime = ManagedRuntime.make(
  testServer({
    db: TestDb(),
    config: {
      AI_DAILY_SPEND_CAP_MICROS: "0",
      OPENERS_DAILY_LIMIT: "10000",
      // Webhooks configured: unsigned bodies are refused (400), not "not configured" (503).
      CLERK_WEBHOOK_SIGNING_SECRET: TEST_WEBHOOK_SECRET
    }
  })
)
afterAll(() => runtime.dispose())

const url = await runtime.runPromise(baseUrl)
const served: unknown = await (await fetch(`${url}/openapi.json`)).json()
const document: JsonSchema = isRecord(served) ? served : {}

interface Operation {
  readonly method: string
  readonly path: string
  readonly parameters: ReadonlyArray<{ readonly name: string; readonly in: string; readonly schema: JsonSchema }>
  readonly body: JsonSchema | undefined
}

const operations: ReadonlyArray<Operation> = Object.entries(
  isRecord(document["paths"]) ? document["paths"] : {}
).flatMap(([path, item]) =>
  Object.entries(isRecord(item) ? item : {}).map(([method, operation]): Operation => {
    const op = isRecord(operation) ? operation : {}
    const parameters = (Array.isArray(op["parameters"]) ? op["parameters"] : []).filter(isRecord).map((p) => ({
      name: String(p["name"]),
      in: String(p["in"]),
      schema: isRecord(p["schema"]) ? p["schema"] : {}
    }))
    const content =
      isRecord(op["requestBody"]) && isRecord(op["requestBody"]["content"]) ? op["requestBody"]["content"] : {}
    const json = content["application/json"]
    return {
      method: method.toUpperCase(),
      path,
      parameters,
      body: isRecord(json) && isRecord(json["schema"]) ? json["schema"] : undefined
    }
  })
)

const CODES = Object.keys(ErrorCatalog)

/** A path or query value: a valid-looking id now and then, else hostile (short enough for a URL). */
const paramValue = fc.oneof(
  { arbitrary: fc.stringMatching(/^[a-z0-9]{1,30}$/), weight: 1 },
  { arbitrary: hostileString(), weight: 3 }
)

const requestFor = (operation: Operation) =>
  fc.record({
    params: fc.array(paramValue, { minLength: 4, maxLength: 4 }),
    query: fc.dictionary(
      fc.oneof(
        fc.constantFrom(...operation.parameters.filter((p) => p.in === "query").map((p) => p.name), "x"),
        hostileString()
      ),
      paramValue,
      { maxKeys: 3 }
    ),
    body: operation.body === undefined ? fc.constant(undefined) : hostileJsonText(document, operation.body)
  })

const live = async () => (await fetch(`${url}/health/live`)).status

test("the document lists the operations", () => {
  expect(operations.length).toBeGreaterThan(20)
})

for (const operation of operations) {
  // Each operation its own user: erasing the account (DELETE /users/me) harms no other property.
  const user = await runtime.runPromise(provisionUser(url, "fuzz"))
  test.prop([requestFor(operation)], { numRuns: 25 })(
    `${operation.method} ${operation.path}: never a 5xx, always the envelope`,
    async ({ params, query, body }) => {
      let index = 0
      const path = operation.path.replace(/\{[^}]+\}/g, () => encodeParam(params[index++] ?? ""))
      const search = Object.entries(query)
        .map(([key, value]) => `${encodeParam(key)}=${encodeParam(value)}`)
        .join("&")
      const response = await fetch(`${url}${path}${search === "" ? "" : `?${search}`}`, {
        method: operation.method,
        headers: { ...user.headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body })
      })
      const text = await response.text()
      const what = `${operation.method} ${path} → ${response.status} ${text.slice(0, 300)}`
      expect(response.status, what).toBeLessThan(500)
      // A refusal never echoes the input back (a 1 MB field is not a 2 MB error).
      if (response.status >= 400) expect(text.length, what).toBeLessThan(16_384)
      if (response.status === 204) return
      // A success that is not JSON (the Prometheus text of /metrics) is judged by the conformance harness.
      if (response.status < 300 && !(response.headers.get("content-type") ?? "").includes("json")) return
      const problem = envelopeProblem(response.status, JSON.parse(text), CODES)
      expect(problem, what).toBeUndefined()
    }
  )
}

test("the server is live after all of it", async () => {
  expect(await live()).toBe(200)
})
