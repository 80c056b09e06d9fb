/**
 * The Gemini adapter's thinking budget on the wire (through @google/genai to the wire fake):
 * Gemini 2.5 thinks unless told not to, before its first visible token and within maxOutputTokens.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import { afterAll, beforeEach } from "vitest"
import { makeGeminiProvider } from "../../../../src/core/ai/gemini.ts"
import { startFakeGemini } from "../../../fakes/ai/index.ts"

const fake = await startFakeGemini()
afterAll(() => fake.close())
beforeEach(() => fake.reset())

const provider = makeGeminiProvider({
  apiKey: Redacted.make("test-key"),
  model: "gemini-2.5-flash",
  timeoutMs: 5_000,
  baseUrl: fake.url
})

const generationConfigs = () =>
  fake.requests.map((request) =>
    typeof request.body === "object" && request.body !== null && "generationConfig" in request.body
      ? request.body.generationConfig
      : undefined
  )

describe("Gemini thinking budget", () => {
  it.effect("a call with thinkingBudget 0 sends thinkingConfig.thinkingBudget 0, streamed or not", () =>
    Effect.gen(function* () {
      yield* provider.generate({ prompt: "Read this", thinkingBudget: 0, maxOutputTokens: 420 })
      yield* Stream.runDrain(provider.stream({ prompt: "Write three replies", thinkingBudget: 0 }))
      expect(generationConfigs()).toEqual([
        expect.objectContaining({ thinkingConfig: { thinkingBudget: 0 }, maxOutputTokens: 420 }),
        expect.objectContaining({ thinkingConfig: { thinkingBudget: 0 } })
      ])
    })
  )

  it.effect("without one, the request leaves thinking to the model's default", () =>
    Effect.gen(function* () {
      yield* provider.generate({ prompt: "Read this", maxOutputTokens: 420 })
      expect(JSON.stringify(fake.requests[0]?.body)).not.toContain("thinking")
    })
  )
})
