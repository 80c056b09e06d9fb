/**
 * Fake Anthropic Messages: POST /v1/messages (point the SDK at `baseURL: fake.url`).
 * Non-streamed: a `message` object. Streamed: `event: <type>\ndata: <json>\n\n` frames — message_start
 * (usage.input_tokens), content_block_start, ping, one content_block_delta per delta, content_block_stop,
 * message_delta (stop_reason, usage.output_tokens), message_stop.
 * Tool use: when the request has `tools` and a `tool_choice` other than `none`, the answer is a `tool_use`
 * block (named by `tool_choice.name`, else the first tool) whose `input` is `JSON.parse(text)`, with
 * stop_reason `tool_use`; streamed, its deltas are `input_json_delta` pieces of `text`. If `text` is not a JSON
 * object, the answer falls back to a text block.
 * Errors: `{ type: "error", error: { type, message }, request_id }`; a 429 carries `retry-after: 1`.
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
  isRecord,
  startFake,
  stringField,
  textLength
} from "./harness.ts"

/**
 * claude-sonnet-4-6 (the chain's default Anthropic model): Artificial Analysis' medians, 0.74 s to the
 * first token and 104 tokens/s; a screenshot's prefill adds 0.5 s (assumed, see bench/README.md).
 */
export const CLAUDE_SONNET_4_6_LATENCY: LatencyProfile = {
  model: "claude-sonnet-4-6",
  ttftMs: 740,
  visionTtftMs: 1240,
  tokensPerSecond: 104,
  tokensPerDelta: 2,
  thinkingTokens: 0
}

const errorKind = (status: number): { readonly type: string; readonly message: string } => {
  if (status === 400) return { type: "invalid_request_error", message: "Invalid request." }
  if (status === 401) return { type: "authentication_error", message: "invalid x-api-key" }
  if (status === 403) return { type: "permission_error", message: "Permission denied." }
  if (status === 404) return { type: "not_found_error", message: "Not found." }
  if (status === 413) return { type: "request_too_large", message: "Request exceeds the maximum allowed size." }
  if (status === 429) return { type: "rate_limit_error", message: "Rate limited. Please try again later." }
  if (status === 529) return { type: "overloaded_error", message: "Overloaded" }
  if (status >= 500) return { type: "api_error", message: "Internal server error" }
  return { type: "invalid_request_error", message: `Request failed with status ${status}.` }
}

interface ToolAnswer {
  readonly name: string
  readonly input: Readonly<Record<string, unknown>>
}

/** The tool the request forces or allows, answered with `JSON.parse(text)` when that is an object. */
const toolAnswer = (body: unknown, text: string): ToolAnswer | undefined => {
  const tools = arrayField(body, "tools")
  const choice = field(body, "tool_choice")
  if (tools.length === 0 || !isRecord(choice) || choice["type"] === "none") return undefined
  const name = choice["type"] === "tool" ? stringField(choice, "name") : stringField(tools[0], "name")
  if (name === undefined) return undefined
  try {
    const input: unknown = JSON.parse(text)
    return isRecord(input) ? { name, input } : undefined
  } catch {
    return undefined
  }
}

const modelOf = (call: Call): string => stringField(call.body, "model") ?? "claude-fake"

const message = (call: Call, content: ReadonlyArray<unknown>, stopReason: string | null, usage: Answer["usage"]) => ({
  id: `msg_fake${call.seq}`,
  type: "message",
  role: "assistant",
  model: modelOf(call),
  content,
  stop_reason: stopReason,
  stop_sequence: null,
  usage: {
    input_tokens: usage.input,
    output_tokens: usage.output,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    service_tier: "standard"
  }
})

const event = (type: string, data: Readonly<Record<string, unknown>>): string =>
  `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`

export const anthropicProtocol: ProviderProtocol = {
  name: "anthropic",
  route: (method, url) =>
    method === "POST" && url.pathname === "/v1/messages" ? { model: undefined, streamByPath: false } : undefined,
  isStream: (_route, body) => field(body, "stream") === true,
  hasImage: (body) =>
    arrayField(body, "messages").some((message) =>
      arrayField(message, "content").some((part) => field(part, "type") === "image")
    ),
  // Extended thinking is opt-in on Anthropic (a `thinking` field), never sent by the app.
  thinksBeforeAnswering: () => false,
  promptChars: (body) => textLength(field(body, "system")) + textLength(field(body, "messages")),
  headers: (seq) => ({ "request-id": `req_fake_${seq}` }),
  error: (status, message, seq) => {
    const kind = errorKind(status)
    return {
      body: {
        type: "error",
        error: { type: kind.type, message: message ?? kind.message },
        request_id: `req_fake_${seq}`
      },
      headers: status === 429 ? { "retry-after": "1" } : {}
    }
  },
  complete: (call, answer) => {
    const tool = toolAnswer(call.body, answer.text)
    return tool
      ? message(
          call,
          [{ type: "tool_use", id: `toolu_fake${call.seq}`, name: tool.name, input: tool.input }],
          "tool_use",
          answer.usage
        )
      : message(call, [{ type: "text", text: answer.text, citations: null }], "end_turn", answer.usage)
  },
  stream: (call, answer, finished) => {
    const tool = toolAnswer(call.body, answer.text)
    const start = message(call, [], null, { input: answer.usage.input, output: 1 })
    return {
      head: [
        event("message_start", { message: start }),
        event("content_block_start", {
          index: 0,
          content_block: tool
            ? { type: "tool_use", id: `toolu_fake${call.seq}`, name: tool.name, input: {} }
            : { type: "text", text: "", citations: null }
        }),
        event("ping", {})
      ],
      deltas: answer.chunks.map((chunk) =>
        event("content_block_delta", {
          index: 0,
          delta: tool ? { type: "input_json_delta", partial_json: chunk } : { type: "text_delta", text: chunk }
        })
      ),
      tail: finished
        ? [
            event("content_block_stop", { index: 0 }),
            event("message_delta", {
              delta: { stop_reason: tool ? "tool_use" : "end_turn", stop_sequence: null },
              usage: { output_tokens: answer.usage.output }
            }),
            event("message_stop", {})
          ]
        : []
    }
  },
  malformedFrame: 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,\n\n'
}

export const startFakeAnthropic = (options?: FakeOptions): Promise<FakeProvider> =>
  startFake(anthropicProtocol, options)
