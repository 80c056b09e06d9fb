/**
 * The default models must be ones the providers still serve: the Anthropic SDK warns about a model
 * past its deprecation date (and the API stops answering at end-of-life). The default is read from
 * AiConfig as the server reads it and sent through the real SDK to the wire fake.
 */
import Anthropic from "@anthropic-ai/sdk"
import { ConfigProvider, Effect, Layer } from "effect"
import { afterAll, expect, it, vi } from "vitest"
import { AiConfig } from "../../../../src/core/ai/config.ts"
import { AppConfig } from "../../../../src/core/config.ts"
import { startFakeAnthropic } from "../../../fakes/ai/index.ts"

const fake = await startFakeAnthropic()
afterAll(() => fake.close())

it("the default Anthropic model is not one the SDK calls deprecated", async () => {
  const config = await Effect.runPromise(
    AiConfig.pipe(
      Effect.provide(AiConfig.Default.pipe(Layer.provide(AppConfig.Default))),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
    )
  )
  const warn = vi.spyOn(console, "warn").mockImplementation(() => {})
  try {
    const client = new Anthropic({ apiKey: "sk-ant-test", baseURL: fake.url, maxRetries: 0 })
    await client.messages.create({
      model: config.anthropic.model,
      max_tokens: 16,
      messages: [{ role: "user", content: "hi" }]
    })
    expect(fake.requests.at(-1)?.body).toMatchObject({ model: config.anthropic.model })
    expect(warn.mock.calls.map((call) => String(call[0]))).not.toContainEqual(expect.stringMatching(/deprecated/))
  } finally {
    warn.mockRestore()
  }
})
