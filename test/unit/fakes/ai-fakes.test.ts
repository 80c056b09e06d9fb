/**
 * The wire-level LLM fakes (test/fakes/ai) spoken to by the real SDKs: openai, @anthropic-ai/sdk, @google/genai.
 * The same scenarios run against each provider through a small per-SDK adapter.
 */
import Anthropic, * as AnthropicErrors from "@anthropic-ai/sdk"
import { ApiError as GeminiApiError, GoogleGenAI } from "@google/genai"
import OpenAI, * as OpenAIErrors from "openai"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { type FakeProvider, type FakeProviderName, startFakeProvider } from "../../fakes/ai/index.ts"

interface Usage {
  readonly input: number
  readonly output: number
}
type StreamItem = { readonly delta: string } | { readonly usage: Usage }
interface Completion {
  readonly text: string
  readonly usage: Usage
}

/** One SDK, driven the way production code would. */
interface Adapter {
  complete(prompt: string, signal?: AbortSignal): Promise<Completion>
  stream(prompt: string, signal?: AbortSignal): AsyncIterable<StreamItem>
  /** The SDK's error for an HTTP status. */
  readonly statusError: (status: number) => new (...args: never) => Error
  /** The SDK's error when the connection drops before an answer. */
  readonly connectionError: new (...args: never) => Error
}

const openaiAdapter = (fake: FakeProvider): Adapter => {
  const client = new OpenAI({ apiKey: "sk-test", baseURL: `${fake.url}/v1`, maxRetries: 0, logLevel: "off" })
  return {
    complete: async (prompt, signal) => {
      const response = await client.chat.completions.create(
        { model: "gpt-test", messages: [{ role: "user", content: prompt }] },
        signal ? { signal } : {}
      )
      return {
        text: response.choices[0]?.message.content ?? "",
        usage: { input: response.usage?.prompt_tokens ?? -1, output: response.usage?.completion_tokens ?? -1 }
      }
    },
    stream: async function* (prompt, signal) {
      const stream = await client.chat.completions.create(
        {
          model: "gpt-test",
          messages: [{ role: "user", content: prompt }],
          stream: true,
          stream_options: { include_usage: true }
        },
        signal ? { signal } : {}
      )
      for await (const chunk of stream) {
        const content = chunk.choices[0]?.delta.content
        if (content) yield { delta: content }
        if (chunk.usage) yield { usage: { input: chunk.usage.prompt_tokens, output: chunk.usage.completion_tokens } }
      }
    },
    statusError: (status) => (status === 429 ? OpenAIErrors.RateLimitError : OpenAIErrors.InternalServerError),
    connectionError: OpenAIErrors.APIConnectionError
  }
}

const anthropicAdapter = (fake: FakeProvider): Adapter => {
  const client = new Anthropic({ apiKey: "sk-ant-test", baseURL: fake.url, maxRetries: 0, logLevel: "off" })
  return {
    complete: async (prompt, signal) => {
      const message = await client.messages.create(
        { model: "claude-test", max_tokens: 256, messages: [{ role: "user", content: prompt }] },
        signal ? { signal } : {}
      )
      const block = message.content[0]
      return {
        text: block?.type === "text" ? block.text : "",
        usage: { input: message.usage.input_tokens, output: message.usage.output_tokens }
      }
    },
    stream: async function* (prompt, signal) {
      const stream = await client.messages.create(
        { model: "claude-test", max_tokens: 256, messages: [{ role: "user", content: prompt }], stream: true },
        signal ? { signal } : {}
      )
      let input = -1
      for await (const event of stream) {
        if (event.type === "message_start") input = event.message.usage.input_tokens
        if (event.type === "content_block_delta" && event.delta.type === "text_delta") yield { delta: event.delta.text }
        if (event.type === "message_delta") yield { usage: { input, output: event.usage.output_tokens } }
      }
    },
    statusError: (status) => (status === 429 ? AnthropicErrors.RateLimitError : AnthropicErrors.InternalServerError),
    connectionError: AnthropicErrors.APIConnectionError
  }
}

const geminiAdapter = (fake: FakeProvider): Adapter => {
  const client = new GoogleGenAI({ apiKey: "gemini-test", httpOptions: { baseUrl: fake.url } })
  return {
    complete: async (prompt, signal) => {
      const response = await client.models.generateContent({
        model: "gemini-test",
        contents: prompt,
        ...(signal ? { config: { abortSignal: signal } } : {})
      })
      return {
        text: response.text ?? "",
        usage: {
          input: response.usageMetadata?.promptTokenCount ?? -1,
          output: response.usageMetadata?.candidatesTokenCount ?? -1
        }
      }
    },
    stream: async function* (prompt, signal) {
      const stream = await client.models.generateContentStream({
        model: "gemini-test",
        contents: prompt,
        ...(signal ? { config: { abortSignal: signal } } : {})
      })
      for await (const chunk of stream) {
        if (chunk.text) yield { delta: chunk.text }
        const usage = chunk.usageMetadata
        if (usage?.candidatesTokenCount !== undefined)
          yield { usage: { input: usage.promptTokenCount ?? -1, output: usage.candidatesTokenCount } }
      }
    },
    statusError: () => GeminiApiError,
    // Node's fetch rejects with `TypeError: fetch failed` (cause: SocketError "other side closed").
    connectionError: TypeError
  }
}

const adapters: Record<FakeProviderName, (fake: FakeProvider) => Adapter> = {
  openai: openaiAdapter,
  anthropic: anthropicAdapter,
  gemini: geminiAdapter
}

const collect = async (items: AsyncIterable<StreamItem>) => {
  const deltas: Array<string> = []
  let usage: Usage | undefined
  let error: unknown
  try {
    for await (const item of items) {
      if ("delta" in item) deltas.push(item.delta)
      else usage = item.usage
    }
  } catch (caught) {
    error = caught
  }
  return { deltas, usage, error }
}

/** Waits until `condition` holds: no deadline of its own, the test's timeout is the guard. */
const waitFor = async (condition: () => boolean): Promise<void> => {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5))
}

const expectedPath: Record<FakeProviderName, { readonly once: string; readonly stream: string }> = {
  openai: { once: "/v1/chat/completions", stream: "/v1/chat/completions" },
  anthropic: { once: "/v1/messages", stream: "/v1/messages" },
  gemini: {
    once: "/v1/models/gemini-test:generateContent",
    stream: "/v1/models/gemini-test:streamGenerateContent?alt=sse"
  }
}

describe.each<FakeProviderName>(["openai", "anthropic", "gemini"])("fake %s spoken to by its real SDK", (name) => {
  let fake: FakeProvider
  let sdk: Adapter

  beforeAll(async () => {
    fake = await startFakeProvider(name)
    sdk = adapters[name](fake)
  })
  afterAll(async () => {
    await fake.close()
  })
  beforeEach(() => {
    fake.reset()
  })

  it("listens on 127.0.0.1 without a trailing slash", () => {
    expect(fake.name).toBe(name)
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  })

  it("answers a non-streamed request with the text and usage", async () => {
    fake.enqueue({ kind: "ok", text: "Hello there", usage: { input: 12, output: 3 } })
    expect(await sdk.complete("Hi")).toEqual({ text: "Hello there", usage: { input: 12, output: 3 } })
  })

  it("defaults usage to a quarter of the characters and the fallback answer", async () => {
    // prompt: 8 characters -> 2 tokens; "fake answer": 11 characters -> 3 tokens
    expect(await sdk.complete("12345678")).toEqual({ text: "fake answer", usage: { input: 2, output: 3 } })
    fake.setFallback({ kind: "ok", text: "other" })
    expect((await sdk.complete("x")).text).toBe("other")
  })

  it("streams the chunks as separate deltas, with usage at the end", async () => {
    fake.enqueue({ kind: "ok", text: "Hello world!", chunks: ["Hel", "lo ", "world!"], usage: { input: 7, output: 4 } })
    const result = await collect(sdk.stream("Hi"))
    expect(result.error).toBeUndefined()
    expect(result.deltas).toEqual(["Hel", "lo ", "world!"])
    expect(result.usage).toEqual({ input: 7, output: 4 })
  })

  it("splits the text into ~3 deltas by default and spaces them by chunkDelayMs", async () => {
    fake.enqueue({ kind: "ok", text: "abcdefghi", chunkDelayMs: 40 })
    const started = Date.now()
    const result = await collect(sdk.stream("Hi"))
    expect(result.deltas).toEqual(["abc", "def", "ghi"])
    expect(Date.now() - started).toBeGreaterThanOrEqual(75)
  })

  it("surfaces a 429 as the SDK's rate-limit error and a 500 as a server error", async () => {
    fake.enqueue({ kind: "status", status: 429, message: "slow down" }, { kind: "status", status: 500 })
    const rateLimited = await sdk.complete("Hi").catch((error: unknown) => error)
    expect(rateLimited).toBeInstanceOf(sdk.statusError(429))
    expect(rateLimited).toMatchObject({ status: 429 })
    expect(String(rateLimited)).toContain("slow down")
    const failed = await sdk.complete("Hi").catch((error: unknown) => error)
    expect(failed).toBeInstanceOf(sdk.statusError(500))
    expect(failed).toMatchObject({ status: 500 })
  })

  it("surfaces an error status on a streamed request before any delta", async () => {
    fake.enqueue({ kind: "status", status: 429 })
    const result = await collect(sdk.stream("Hi"))
    expect(result.deltas).toEqual([])
    expect(result.error).toBeInstanceOf(sdk.statusError(429))
    expect(result.error).toMatchObject({ status: 429 })
  })

  it("surfaces malformed JSON as an error, streamed or not", async () => {
    fake.enqueue({ kind: "malformed" }, { kind: "malformed" })
    await expect(sdk.complete("Hi")).rejects.toBeInstanceOf(SyntaxError)
    const result = await collect(sdk.stream("Hi"))
    expect(result.deltas).toEqual([])
    expect(result.error).toBeInstanceOf(SyntaxError)
  })

  it("cut after 1 chunk yields one delta, then an error", async () => {
    fake.enqueue({ kind: "cut", afterChunks: 1, chunks: ["one ", "two ", "three"] })
    const result = await collect(sdk.stream("Hi"))
    expect(result.deltas).toEqual(["one "])
    expect(result.usage).toBeUndefined()
    expect(result.error).toBeInstanceOf(Error)
    expect(fake.abortedRequests).toBe(0)
  })

  it("cut after 0 chunks yields no delta; cut without a stream drops the connection", async () => {
    fake.enqueue({ kind: "cut", afterChunks: 0, chunks: ["a", "b"] }, { kind: "cut", afterChunks: 0, chunks: [] })
    const result = await collect(sdk.stream("Hi"))
    expect(result.deltas).toEqual([])
    expect(result.error).toBeInstanceOf(Error)
    await expect(sdk.complete("Hi")).rejects.toBeInstanceOf(sdk.connectionError)
  })

  it("hang + abort in the SDK call resolves nextClientAbort", async () => {
    fake.enqueue({ kind: "hang" })
    const controller = new AbortController()
    const call = sdk.complete("Are you there?", controller.signal).catch((error: unknown) => error)
    await waitFor(() => fake.requests.length === 1)
    const aborted = fake.nextClientAbort()
    controller.abort()
    expect(await call).toBeInstanceOf(Error)
    const request = await aborted
    expect(request.path).toBe(expectedPath[name].once)
    expect(fake.abortedRequests).toBe(1)
  })

  it("an abort in the middle of a stream resolves nextClientAbort", async () => {
    fake.enqueue({ kind: "ok", text: "abc", chunks: ["a", "b", "c"], chunkDelayMs: 300 })
    const controller = new AbortController()
    const deltas: Array<string> = []
    try {
      for await (const item of sdk.stream("Hi", controller.signal)) {
        if ("delta" in item) deltas.push(item.delta)
        controller.abort()
      }
    } catch {
      // an abort may surface as an error
    }
    const request = await fake.nextClientAbort()
    expect(deltas).toEqual(["a"])
    expect(request.stream).toBe(true)
    expect(fake.abortedRequests).toBe(1)
  })

  it("delayMs delays the answer", async () => {
    fake.enqueue({ kind: "ok", text: "late", delayMs: 60 })
    const started = Date.now()
    expect((await sdk.complete("Hi")).text).toBe("late")
    expect(Date.now() - started).toBeGreaterThanOrEqual(55)
  })

  it("records requests with their paths, headers and parsed bodies", async () => {
    await sdk.complete("first prompt")
    await collect(sdk.stream("second prompt"))
    const [once, streamed] = fake.requests
    expect(fake.requests).toHaveLength(2)
    expect(once?.path).toBe(expectedPath[name].once)
    expect(once?.stream).toBe(false)
    expect(streamed?.path).toBe(expectedPath[name].stream)
    expect(streamed?.stream).toBe(true)
    expect(JSON.stringify(once?.body)).toContain("first prompt")
    expect(JSON.stringify(streamed?.body)).toContain("second prompt")
    if (name === "openai") {
      expect(once?.headers["authorization"]).toBe("Bearer sk-test")
      expect(once?.body).toMatchObject({ model: "gpt-test", messages: [{ role: "user", content: "first prompt" }] })
      expect(streamed?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    } else if (name === "anthropic") {
      // @anthropic-ai/sdk 1.14.0 sends the API key as a bearer token, not as `x-api-key`.
      expect(once?.headers["authorization"]).toBe("Bearer sk-ant-test")
      expect(once?.headers["anthropic-version"]).toEqual(expect.any(String))
      expect(once?.body).toMatchObject({
        model: "claude-test",
        max_tokens: 256,
        messages: [{ role: "user", content: "first prompt" }]
      })
      expect(streamed?.body).toMatchObject({ stream: true })
    } else {
      expect(once?.headers["x-goog-api-key"]).toBe("gemini-test")
      expect(once?.body).toMatchObject({ contents: [{ role: "user", parts: [{ text: "first prompt" }] }] })
    }
    fake.reset()
    expect(fake.requests).toEqual([])
  })

  it("answers unknown routes with 404 in the provider's error shape", async () => {
    const response = await fetch(`${fake.url}/nowhere`, { method: "POST", body: "{}" })
    expect(response.status).toBe(404)
    const body: unknown = await response.json()
    expect(body).toMatchObject({ error: { message: expect.stringContaining("/nowhere") } })
    expect(fake.requests[0]?.path).toBe("/nowhere")
  })
})

describe("structured output", () => {
  let fakes: Record<FakeProviderName, FakeProvider>
  beforeAll(async () => {
    const [openai, anthropic, gemini] = await Promise.all([
      startFakeProvider("openai"),
      startFakeProvider("anthropic"),
      startFakeProvider("gemini")
    ])
    fakes = { openai, anthropic, gemini }
  })
  afterAll(async () => {
    await Promise.all(Object.values(fakes).map((fake) => fake.close()))
  })

  const schema = { type: "object", properties: { reply: { type: "string" } }, required: ["reply"] }
  const json = '{"reply":"hi"}'

  it("OpenAI: response_format is recorded and the text answered as content", async () => {
    const fake = fakes.openai
    fake.enqueue({ kind: "ok", text: json })
    const client = new OpenAI({ apiKey: "k", baseURL: `${fake.url}/v1`, maxRetries: 0 })
    const response = await client.chat.completions.create({
      model: "gpt-test",
      messages: [{ role: "user", content: "Hi" }],
      response_format: { type: "json_schema", json_schema: { name: "reply", schema, strict: true } }
    })
    expect(JSON.parse(response.choices[0]?.message.content ?? "")).toEqual({ reply: "hi" })
    expect(fake.requests[0]?.body).toMatchObject({ response_format: { type: "json_schema" } })
  })

  it("Gemini: responseMimeType / responseJsonSchema are recorded and the text answered", async () => {
    const fake = fakes.gemini
    fake.enqueue({ kind: "ok", text: json })
    const client = new GoogleGenAI({ apiKey: "k", httpOptions: { baseUrl: fake.url } })
    const response = await client.models.generateContent({
      model: "gemini-test",
      contents: "Hi",
      config: { responseMimeType: "application/json", responseJsonSchema: schema, systemInstruction: "Be brief" }
    })
    expect(JSON.parse(response.text ?? "")).toEqual({ reply: "hi" })
    expect(fake.requests[0]?.body).toMatchObject({
      generationConfig: { responseMimeType: "application/json", responseJsonSchema: schema },
      systemInstruction: { parts: [{ text: "Be brief" }] }
    })
  })

  it("Anthropic: a forced tool is answered with a tool_use block, streamed or not", async () => {
    const fake = fakes.anthropic
    fake.enqueue({ kind: "ok", text: json }, { kind: "ok", text: json })
    const client = new Anthropic({ apiKey: "k", baseURL: fake.url, maxRetries: 0 })
    const params: Anthropic.MessageCreateParamsNonStreaming = {
      model: "claude-test",
      max_tokens: 256,
      messages: [{ role: "user", content: "Hi" }],
      tools: [
        {
          name: "reply",
          description: "Reply",
          input_schema: { type: "object", properties: schema.properties, required: schema.required }
        }
      ],
      tool_choice: { type: "tool", name: "reply" }
    }
    const message = await client.messages.create(params)
    expect(message.stop_reason).toBe("tool_use")
    expect(message.content[0]).toMatchObject({ type: "tool_use", name: "reply", input: { reply: "hi" } })
    const streamed = await client.messages.stream(params).finalMessage()
    expect(streamed.stop_reason).toBe("tool_use")
    expect(streamed.content[0]).toMatchObject({ type: "tool_use", name: "reply", input: { reply: "hi" } })
    expect(fake.requests.map((request) => request.stream)).toEqual([false, true])
  })

  it("Anthropic: without tool_choice the text comes back as a text block (messages.stream helper)", async () => {
    const fake = fakes.anthropic
    fake.enqueue({ kind: "ok", text: "plain", usage: { input: 5, output: 2 } })
    const client = new Anthropic({ apiKey: "k", baseURL: fake.url, maxRetries: 0 })
    const stream = client.messages.stream({
      model: "claude-test",
      max_tokens: 256,
      system: "sys",
      messages: [{ role: "user", content: "Hi" }]
    })
    const texts: Array<string> = []
    stream.on("text", (text) => texts.push(text))
    const message = await stream.finalMessage()
    expect(texts.join("")).toBe("plain")
    expect(message.usage).toMatchObject({ input_tokens: 5, output_tokens: 2 })
    expect(message.stop_reason).toBe("end_turn")
  })
})
