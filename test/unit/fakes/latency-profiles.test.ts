/**
 * The wire fakes' opt-in latency profiles: which waits an answer is paced by (recorded through the
 * `wait` option, so nothing here depends on a timer), and that without a profile nothing waits.
 */
import { afterEach, describe, expect, it } from "vitest"
import {
  type FakeProvider,
  type FakeProviderName,
  GEMINI_2_5_FLASH_LATENCY,
  GPT_4O_LATENCY,
  LATENCY_PROFILES,
  startFakeProvider
} from "../../fakes/ai/index.ts"
import { paceOf, splitTokens } from "../../fakes/ai/harness.ts"

const started: Array<FakeProvider> = []
afterEach(async () => {
  await Promise.all(started.splice(0).map((fake) => fake.close()))
})

/** A fake whose waits are recorded and return at once. */
const recordingFake = async (name: FakeProviderName, latency = true) => {
  const waits: Array<number> = []
  const fake = await startFakeProvider(name, {
    ...(latency ? { latency: LATENCY_PROFILES[name] } : {}),
    wait: (ms) => {
      waits.push(ms)
      return Promise.resolve(true)
    }
  })
  started.push(fake)
  return { fake, waits }
}

const post = async (url: string, body: unknown) => {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body)
  })
  return response.text()
}

const TEXT = "Saturday morning works for me, the lighthouse trail it is!" // 58 characters: 15 tokens
const PNG = { mimeType: "image/png", data: "iVBORw0KGgo=" }

describe("latency profiles", () => {
  it("every default model has a profile", () => {
    expect(Object.values(LATENCY_PROFILES).map((profile) => profile.model)).toEqual([
      "gemini-2.5-flash",
      "gpt-4o",
      "claude-sonnet-4-6"
    ])
  })

  it("without a profile nothing waits", async () => {
    const { fake, waits } = await recordingFake("openai", false)
    fake.setFallback({ kind: "ok", text: TEXT })
    await post(`${fake.url}/v1/chat/completions`, { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
    expect(waits).toEqual([])
  })

  it("a Gemini stream with thinking off: first token at the text TTFT, then one delta per 8 tokens at 200/s", async () => {
    const { fake, waits } = await recordingFake("gemini")
    fake.setFallback({ kind: "ok", text: TEXT })
    const body = await post(`${fake.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse`, {
      contents: [{ role: "user", parts: [{ text: "Write three replies" }] }],
      generationConfig: { thinkingConfig: { thinkingBudget: 0 } }
    })
    // 58 characters in deltas of 32 (8 tokens): the second when its last token is out, 7 tokens × 5 ms later.
    expect(splitTokens(TEXT, GEMINI_2_5_FLASH_LATENCY.tokensPerDelta)).toHaveLength(2)
    expect(waits).toEqual([400, 35])
    expect(body.match(/^data: /gm)).toHaveLength(2)
  })

  it("a Gemini request that leaves thinking on waits for the thinking tokens first", async () => {
    const { fake, waits } = await recordingFake("gemini")
    fake.setFallback({ kind: "ok", text: TEXT })
    await post(`${fake.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
      contents: [{ role: "user", parts: [{ text: "Write three replies" }] }]
    })
    // 400 ms + 200 thinking tokens at 200/s, then the 7 tokens after the first chunk's 8.
    expect(waits).toEqual([400 + 1000 + 7 * 5])
  })

  it("a vision request waits for the vision TTFT, and a non-streamed answer for its last token", async () => {
    const { fake, waits } = await recordingFake("openai")
    fake.setFallback({ kind: "ok", text: TEXT })
    await post(`${fake.url}/v1/chat/completions`, {
      model: "gpt-4o",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "Read this" },
            { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=" } }
          ]
        }
      ]
    })
    expect(waits).toHaveLength(1)
    // One token per chunk: the 14 tokens after the first.
    expect(waits[0]).toBeCloseTo(GPT_4O_LATENCY.visionTtftMs + (14 * 1000) / GPT_4O_LATENCY.tokensPerSecond, 6)
  })

  it("an Anthropic image block and a Gemini inlineData part count as vision", async () => {
    const anthropic = await recordingFake("anthropic")
    await post(`${anthropic.fake.url}/v1/messages`, {
      model: "claude-sonnet-4-6",
      max_tokens: 100,
      messages: [{ role: "user", content: [{ type: "image", source: { type: "base64", media_type: "image/png" } }] }]
    })
    const gemini = await recordingFake("gemini")
    await post(`${gemini.fake.url}/v1beta/models/gemini-2.5-flash:generateContent`, {
      contents: [{ role: "user", parts: [{ inlineData: PNG }, { text: "Read this" }] }],
      generationConfig: { thinkingConfig: { thinkingBudget: 0 } }
    })
    expect(anthropic.waits[0]).toBeGreaterThanOrEqual(LATENCY_PROFILES.anthropic.visionTtftMs)
    expect(gemini.waits[0]).toBeGreaterThanOrEqual(GEMINI_2_5_FLASH_LATENCY.visionTtftMs)
  })

  it("a stream's waits add up to its non-streamed answer's", () => {
    const chunks = splitTokens(TEXT.repeat(5), GPT_4O_LATENCY.tokensPerDelta)
    const pace = paceOf(GPT_4O_LATENCY, { image: false, thinking: false }, chunks)
    expect(pace.deltaAtMs[0]).toBe(GPT_4O_LATENCY.ttftMs)
    expect(pace.deltaAtMs.at(-1)).toBeCloseTo(pace.doneMs, 6)
    expect(pace.deltaAtMs).toEqual([...pace.deltaAtMs].sort((a, b) => a - b))
  })
})
