/**
 * Fake OpenAI Chat Completions: POST /v1/chat/completions (point the SDK at `baseURL: fake.url + "/v1"`).
 * Non-streamed: a `chat.completion` object. Streamed: `data: <chat.completion.chunk>\n\n` frames — a first frame
 * with `delta: { role: "assistant", content: "" }` (as the real API sends), one frame per delta
 * (`delta: { content }`), a frame with `finish_reason: "stop"` and an empty delta, a usage frame (`choices: []`)
 * when the request has `stream_options.include_usage`, then `data: [DONE]\n\n`.
 * Errors: `{ error: { message, type, param, code } }`; a 429 carries `retry-after: 1`.
 */
import {
  type Answer,
  type Call,
  type FakeOptions,
  type FakeProvider,
  type LatencyProfile,
  type ProviderProtocol,
  arrayField,
  field,
  nowSeconds,
  startFake,
  stringField,
  textLength
} from "./harness.ts"

/**
 * gpt-4o (the chain's default OpenAI model): Artificial Analysis' medians, 0.45 s to the first token and
 * 131 tokens/s; a screenshot's prefill adds 0.5 s (assumed, see bench/README.md). Chat Completions streams
 * about one token per chunk.
 */
export const GPT_4O_LATENCY: LatencyProfile = {
  model: "gpt-4o",
  ttftMs: 450,
  visionTtftMs: 950,
  tokensPerSecond: 131,
  tokensPerDelta: 1,
  thinkingTokens: 0
}

const errorKind = (
  status: number
): { readonly type: string; readonly code: string | null; readonly message: string } => {
  if (status === 400) return { type: "invalid_request_error", code: null, message: "Invalid request." }
  if (status === 401)
    return { type: "invalid_request_error", code: "invalid_api_key", message: "Incorrect API key provided." }
  if (status === 403) return { type: "invalid_request_error", code: null, message: "Permission denied." }
  if (status === 404) return { type: "invalid_request_error", code: "model_not_found", message: "Not found." }
  if (status === 429)
    return { type: "requests", code: "rate_limit_exceeded", message: "Rate limit reached for requests." }
  if (status >= 500)
    return {
      type: "server_error",
      code: null,
      message: "The server had an error while processing your request. Sorry about that!"
    }
  return { type: "invalid_request_error", code: null, message: `Request failed with status ${status}.` }
}

const usageOf = (answer: Answer) => ({
  prompt_tokens: answer.usage.input,
  completion_tokens: answer.usage.output,
  total_tokens: answer.usage.input + answer.usage.output,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0
  }
})

const modelOf = (call: Call): string => stringField(call.body, "model") ?? "gpt-fake"

export const openaiProtocol: ProviderProtocol = {
  name: "openai",
  route: (method, url) =>
    method === "POST" && url.pathname === "/v1/chat/completions"
      ? { model: undefined, streamByPath: false }
      : undefined,
  isStream: (_route, body) => field(body, "stream") === true,
  hasImage: (body) =>
    arrayField(body, "messages").some((message) =>
      arrayField(message, "content").some((part) => field(part, "type") === "image_url")
    ),
  thinksBeforeAnswering: () => false,
  promptChars: (body) => textLength(field(body, "messages")),
  headers: (seq) => ({ "x-request-id": `req_fake_${seq}` }),
  error: (status, message) => {
    const kind = errorKind(status)
    return {
      body: { error: { message: message ?? kind.message, type: kind.type, param: null, code: kind.code } },
      headers: status === 429 ? { "retry-after": "1" } : {}
    }
  },
  complete: (call, answer) => ({
    id: `chatcmpl-fake${call.seq}`,
    object: "chat.completion",
    created: nowSeconds(),
    model: modelOf(call),
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: answer.text, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: "stop"
      }
    ],
    usage: usageOf(answer),
    service_tier: "default",
    system_fingerprint: null
  }),
  stream: (call, answer, finished) => {
    const includeUsage = field(field(call.body, "stream_options"), "include_usage") === true
    const created = nowSeconds()
    const frame = (choices: ReadonlyArray<unknown>, usage?: unknown): string =>
      `data: ${JSON.stringify({
        id: `chatcmpl-fake${call.seq}`,
        object: "chat.completion.chunk",
        created,
        model: modelOf(call),
        service_tier: "default",
        system_fingerprint: null,
        choices,
        ...(includeUsage ? { usage: usage ?? null } : {})
      })}\n\n`
    const choice = (delta: unknown, finishReason: string | null) => ({
      index: 0,
      delta,
      logprobs: null,
      finish_reason: finishReason
    })
    return {
      head: [frame([choice({ role: "assistant", content: "", refusal: null }, null)])],
      deltas: answer.chunks.map((chunk) => frame([choice({ content: chunk }, null)])),
      tail: finished
        ? [frame([choice({}, "stop")]), ...(includeUsage ? [frame([], usageOf(answer))] : []), "data: [DONE]\n\n"]
        : []
    }
  },
  malformedFrame: 'data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","choices":[{\n\n'
}

export const startFakeOpenAI = (options?: FakeOptions): Promise<FakeProvider> => startFake(openaiProtocol, options)
