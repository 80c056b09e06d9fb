/**
 * Property-based: generated WebSocket frames on an authenticated `/ws` connection, shaped by the
 * client frame contract (`ClientFrame`, and `GenerateOpeners` for `opener.generate`, read at run
 * time so a new frame type is covered) with hostile strings, wrong types, deep nesting, huge
 * arrays and garbage. Whatever comes in, the connection stays open and answers the next ping,
 * every frame sent back is a typed JSON object, errors carry a known code and never an internal
 * one, and refusals stay small. A failing run prints its seed and counterexample.
 */
import { fc, test } from "@fast-check/vitest"
import { Effect, Exit, ManagedRuntime, Scope } from "effect"
import { afterAll, expect } from "vitest"
import { ErrorCatalog } from "../../../src/domain/errors.ts"
import { GenerateOpeners } from "../../../src/domain/openers.ts"
import { ClientFrame, SocketErrorCode } from "../../../src/domain/realtime.ts"
import { TestDb } from "../../support/database.ts"
import { breakingJsonText, jsonSchemaOf, shapedBy } from "../../support/hostile.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"
import { connectAs, type Frame } from "../../support/ws.ts"

const runtime = ManagedRuntime.make(
  testServer({
    db: TestDb(),
    config: { AI_DAILY_SPEND_CAP_MICROS: "0", OPENERS_DAILY_LIMIT: "10000", WS_MAX_FRAME_BYTES: "1048576" }
  })
)
const scope = await runtime.runPromise(Scope.make())
afterAll(async () => {
  await runtime.runPromise(Scope.close(scope, Exit.void))
  await runtime.dispose()
})

const url = await runtime.runPromise(baseUrl)
const user = await runtime.runPromise(provisionUser(url, "wsfuzz"))
const socket = await runtime.runPromise(Scope.extend(connectAs(url, user.token), scope))

const frameSchema = jsonSchemaOf(ClientFrame.ast)
const generateSchema = jsonSchemaOf(GenerateOpeners.ast)

/** A frame: shaped by the contract (an `opener.generate` with the REST body's fields too), else raw hostile JSON. */
const frameText = fc.oneof(
  {
    arbitrary: fc
      .tuple(shapedBy(frameSchema, frameSchema), shapedBy(generateSchema, generateSchema))
      .map(
        ([frame, body]) =>
          JSON.stringify(
            typeof frame === "object" && frame !== null && !Array.isArray(frame) && "type" in frame
              ? frame.type === "opener.generate" && typeof body === "object" && body !== null
                ? { ...body, ...frame }
                : frame
              : frame
          ) ?? "null"
      ),
    weight: 4
  },
  // Breaking JSON where a known frame type decodes it.
  {
    arbitrary: fc
      .constantFrom(
        (value: string) => `{"type":"ping","t":${value}}`,
        (value: string) => `{"type":"opener.generate","requestId":"r1","profile":${value}}`,
        (value: string) => `{"type":"subscribe","sessionId":${value}}`,
        (value: string) => `{"type":"auth","token":${value}}`
      )
      .chain(breakingJsonText),
    weight: 1
  }
)

const KNOWN_CODES: ReadonlyArray<string> = [...Object.keys(ErrorCatalog), ...Object.values(SocketErrorCode)]
// What the gateway answers when its own code failed (a defect), never a client's fault.
const INTERNAL = ["INTERNAL_ERROR", "SERVICE_UNAVAILABLE"]

const problemOf = (frame: Frame): string | undefined => {
  if (frame.type !== "error" && frame.type !== "opener.error") return undefined
  const code = frame["code"]
  if (typeof code !== "string" || !KNOWN_CODES.includes(code)) return `unknown code ${String(code)}`
  if (INTERNAL.includes(code)) return `internal failure ${code}`
  if (typeof frame["message"] !== "string") return "no message"
  return JSON.stringify(frame).length > 16_384 ? "an oversized error frame" : undefined
}

let probe = 0

test.prop([frameText], { numRuns: 40 })(
  "any frame: the connection answers the next ping, never an internal error",
  async (text) => {
    const from = socket.frames.length
    const t = `probe-${probe++}`
    await Effect.runPromise(socket.sendRaw(text))
    await Effect.runPromise(socket.send({ type: "ping", t }))
    // Frames are handled in order: the pong comes after whatever the frame itself was answered.
    await Effect.runPromise(socket.next((frame) => frame.type === "pong" && frame["t"] === t))
    for (const frame of socket.frames.slice(from)) {
      expect(problemOf(frame), `${text.slice(0, 200)} → ${JSON.stringify(frame).slice(0, 300)}`).toBeUndefined()
    }
  }
)

test("the server is live after all of it", async () => {
  expect((await fetch(`${url}/health/live`)).status).toBe(200)
})
