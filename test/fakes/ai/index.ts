/**
 * Wire-level fakes of the LLM providers: real local HTTP servers (127.0.0.1, port 0) speaking each provider's
 * protocol, so the real SDKs work against them unchanged:
 *
 *   new OpenAI({ apiKey, baseURL: fake.url + "/v1", maxRetries: 0 })
 *   new Anthropic({ apiKey, baseURL: fake.url, maxRetries: 0 })
 *   new GoogleGenAI({ apiKey, httpOptions: { baseUrl: fake.url } })
 *
 * Behaviors (queued with `enqueue`, one per request, then `setFallback`'s, default `{ kind: "ok", text: "fake answer" }`):
 * - `ok`: non-streamed, `text` whole; streamed, `chunks` as separate deltas (default: `text` split into ~3 pieces by
 *   code point). `usage` defaults to input = ceil(prompt characters / 4) (OpenAI: messages' text; Anthropic: system +
 *   messages' text; Gemini: contents' + systemInstruction's text parts), output = ceil(text.length / 4).
 *   `delayMs` delays the response headers; `chunkDelayMs` is waited between deltas; `holdAfter` holds a stream
 *   after that many deltas until its promise settles (an answer half-written). Each recorded request says whether
 *   it carries an image (`image`: a screenshot read, streamed or not).
 * - `status`: that HTTP status with the provider's error JSON (`message` overrides the default message).
 * - `malformed`: 200 with a body that is not JSON (streamed: one SSE frame whose data is not JSON, then the end).
 * - `hang`: never answers; when the client disconnects, `nextClientAbort()` resolves.
 * - `cut`: streamed, the stream's opening frames, `afterChunks` deltas, then the socket is destroyed (~30 ms after
 *   the last delta, so the client reads them first); non-streamed, the socket is destroyed before any answer.
 *
 * Latency profiles (opt-in, `startFakeProvider(name, { latency: LATENCY_PROFILES[name] })`): an `ok` answer waits
 * for the model's first token (`visionTtftMs` when the request carries an image, plus `thinkingTokens` when a
 * Gemini request leaves thinking on), then paces its deltas (`tokensPerDelta` tokens of 4 characters each) at
 * `tokensPerSecond`; a non-streamed answer comes when its last token would. `wait` replaces the timer (tests).
 *
 * Structured output (OpenAI `response_format`, Gemini `responseMimeType`/`responseJsonSchema`, Anthropic
 * `output_config`) is accepted and recorded; the content answered is `text` (put JSON there). Anthropic tool use:
 * see anthropic.ts (a `tool_use` block with `input: JSON.parse(text)`).
 *
 * Recording: every request (unknown routes and bodies that are not JSON too, answered 404 / 400 without consuming a
 * behavior) with `path` = the raw request target including the query (Gemini streams: `...?alt=sse`), the headers as
 * node:http parsed them (lower-case names), the body parsed from JSON, and whether it asked for a stream.
 * `nextClientAbort()` hands out client disconnects in order: an abort that happened before the call is returned at once.
 */
import type { FakeOptions, FakeProvider, FakeProviderName, LatencyProfile } from "./harness.ts"
import { CLAUDE_SONNET_4_6_LATENCY, startFakeAnthropic } from "./anthropic.ts"
import { GEMINI_2_5_FLASH_LATENCY, startFakeGemini } from "./gemini.ts"
import { GPT_4O_LATENCY, startFakeOpenAI } from "./openai.ts"

export type {
  Behavior,
  FakeOptions,
  FakeProvider,
  FakeProviderName,
  LatencyProfile,
  RecordedRequest
} from "./harness.ts"
export { CLAUDE_SONNET_4_6_LATENCY, startFakeAnthropic } from "./anthropic.ts"
export { GEMINI_2_5_FLASH_LATENCY, startFakeGemini } from "./gemini.ts"
export { GPT_4O_LATENCY, startFakeOpenAI } from "./openai.ts"

/** Each fake's default model (src/core/ai/config.ts) as it answers in production: opt in with `{ latency }`. */
export const LATENCY_PROFILES: Readonly<Record<FakeProviderName, LatencyProfile>> = {
  gemini: GEMINI_2_5_FLASH_LATENCY,
  openai: GPT_4O_LATENCY,
  anthropic: CLAUDE_SONNET_4_6_LATENCY
}

export const startFakeProvider = (name: FakeProviderName, options?: FakeOptions): Promise<FakeProvider> => {
  switch (name) {
    case "openai":
      return startFakeOpenAI(options)
    case "anthropic":
      return startFakeAnthropic(options)
    case "gemini":
      return startFakeGemini(options)
  }
}
