/**
 * A provider whose stream sends a frame that is not JSON, cut in the middle of the model's text:
 * the stream fails, and the SDK writes nothing of that frame to the console (stderr is the logs,
 * and the logs never hold what a model wrote). The server is a raw HTTP one: the wire fakes only
 * send whole frames or fixed garbage.
 */
import { createServer, type Server } from "node:http"
import { afterAll, describe, expect, it, vi } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import { makeAnthropicProvider } from "../../../src/core/ai/anthropic.ts"
import { makeOpenAiProvider } from "../../../src/core/ai/openai.ts"

const CANARY = "zorblaxquint"

/** Answers every request with a stream whose second frame is the model's text cut mid-string. */
const server: Server = createServer((request, response) => {
  request.resume()
  request.on("end", () => {
    response.writeHead(200, { "content-type": "text/event-stream" })
    const anthropic = request.url?.includes("/messages") === true
    response.write(
      anthropic
        ? `event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":"message","role":"assistant","model":"x","content":[],"usage":{"input_tokens":1,"output_tokens":0}}}\n\n` +
            `event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n` +
            `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${CANARY} half a\n\n`
        : `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"x","choices":[{"index":0,"delta":{"content":"${CANARY} half a\n\n`
    )
    response.end()
  })
})
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
const address = server.address()
const url = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

const options = { apiKey: Redacted.make("test"), model: "m-test", timeoutMs: 5_000, baseUrl: url }

describe("a malformed stream frame from the provider", () => {
  for (const [name, make] of [
    ["anthropic", makeAnthropicProvider],
    ["openai", makeOpenAiProvider]
  ] as const) {
    it.live(`${name}: the stream fails and the console gets nothing of the frame`, () =>
      Effect.gen(function* () {
        const spies = (["error", "warn", "info", "log", "debug"] as const).map((level) =>
          vi.spyOn(console, level).mockImplementation(() => {})
        )
        // Made after the spies: an SDK binds the console's methods when its client is made.
        const result = yield* make(options).stream({ prompt: "Say hi" }).pipe(Stream.runDrain, Effect.either)
        const written = spies.flatMap((spy) => spy.mock.calls.map((call) => call.map(String).join(" ")))
        for (const spy of spies) spy.mockRestore()
        expect(result._tag).toBe("Left")
        expect(written.filter((line) => line.includes(CANARY))).toEqual([])
      })
    )
  }
})
