/**
 * Property-based: every procedure of the RPC group (read from `WingmateRpcs` at run time, so a
 * new procedure is covered) gets generated payloads over HTTP NDJSON at /rpc: shaped by its
 * payload schema with hostile strings, wrong types, deep nesting, huge arrays, garbage. Whatever
 * comes in: no 5xx, every line a protocol message, a failed call dies only of its payload's decode
 * report (a string, never an error thrown by server code: that is the RPC form of a 500), failures
 * stay small, and the server stays live. A failing run prints its seed and counterexample.
 */
import { test } from "@fast-check/vitest"
import { ManagedRuntime } from "effect"
import { afterAll, expect } from "vitest"
import { WingmateRpcs } from "../../../src/domain/rpc.ts"
import { TestDb } from "../../support/database.ts"
import { hostileJsonText, jsonSchemaOf, isRecord } from "../../support/hostile.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"

const runtime = ManagedRuntime.make(
  testServer({ db: TestDb(), config: { AI_DAILY_SPEND_CAP_MICROS: "0", OPENERS_DAILY_LIMIT: "10000" } })
)
afterAll(() => runtime.dispose())

const url = await runtime.runPromise(baseUrl)
const user = await runtime.runPromise(provisionUser(url, "rpcfuzz"))

const PROTOCOL_TAGS = ["Exit", "Chunk", "Defect", "Pong", "ClientProtocolError"]

/** Why a response line breaks the invariants, or undefined. */
const problemOf = (line: unknown): string | undefined => {
  if (!isRecord(line) || typeof line["_tag"] !== "string" || !PROTOCOL_TAGS.includes(line["_tag"])) {
    return "not a protocol message"
  }
  if (line["_tag"] === "Chunk") return undefined
  if (JSON.stringify(line).length > 16_384) return "an oversized failure"
  const exit = line["exit"]
  if (line["_tag"] !== "Exit" || !isRecord(exit) || exit["_tag"] !== "Failure") return undefined
  const cause = exit["cause"]
  // A payload that does not decode dies with the decode report (a string); any other defect is a server bug.
  if (isRecord(cause) && cause["_tag"] === "Die" && typeof cause["defect"] !== "string")
    return "a defect of server code"
  return undefined
}

for (const [tag, rpc] of WingmateRpcs.requests) {
  const schema = jsonSchemaOf(rpc.payloadSchema.ast)
  test.prop([hostileJsonText(schema, schema)], { numRuns: 25 })(
    `${tag}: no 5xx, protocol messages only, no defect but the payload's decode report`,
    async (payload) => {
      const body = `{"_tag":"Request","id":"1","tag":${JSON.stringify(tag)},"payload":${payload},"headers":[["authorization","Bearer ${user.token}"]]}\n`
      const response = await fetch(`${url}/rpc`, {
        method: "POST",
        headers: { "content-type": "application/ndjson" },
        body
      })
      const text = await response.text()
      const what = `${tag} → ${response.status} ${text.slice(0, 300)}`
      expect(response.status, what).toBeLessThan(500)
      for (const line of text.split("\n").filter((l) => l !== "")) {
        expect(problemOf(JSON.parse(line)), `${what}\n${line.slice(0, 300)}`).toBeUndefined()
      }
    }
  )
}

test("the server is live after all of it", async () => {
  expect((await fetch(`${url}/health/live`)).status).toBe(200)
})
