/** Anthropic (`claude-sonnet` in the chain) through the official SDK: Messages, structured output through a forced tool, streaming. */
import Anthropic from "@anthropic-ai/sdk"
import { Effect, Redacted, Stream } from "effect"
import {
  type AiProvider,
  classify,
  splitApiVersion,
  type SdkProviderOptions,
  type ProviderRequest,
  type StreamEvent
} from "./provider.ts"
import { base64, streamFromSdk } from "./sdk-stream.ts"

const DEFAULT_MAX_TOKENS = 1024

export const makeAnthropicProvider = (options: SdkProviderOptions): AiProvider => {
  const client = new Anthropic({
    apiKey: Redacted.value(options.apiKey),
    maxRetries: 0,
    // The SDK's own logging writes a malformed stream frame (the model's text) to the console; the
    // chain logs its failures itself, without any text.
    logLevel: "off",
    // The SDK adds `/v1/messages`: a URL given with its `/v1` loses it rather than asking for `/v1/v1/…`.
    ...(options.baseUrl === undefined ? {} : { baseURL: splitApiVersion(options.baseUrl).root })
  })
  const id = "claude-sonnet" as const

  const body = (request: ProviderRequest) => ({
    model: options.model,
    max_tokens: request.maxOutputTokens ?? DEFAULT_MAX_TOKENS,
    ...(request.system === undefined ? {} : { system: request.system }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    messages: [
      {
        role: "user" as const,
        content:
          request.image === undefined
            ? request.prompt
            : [
                {
                  type: "image" as const,
                  source: {
                    type: "base64" as const,
                    media_type: request.image.mimeType,
                    data: base64(request.image.bytes)
                  }
                },
                { type: "text" as const, text: request.prompt }
              ]
      }
    ],
    // Anthropic's structured output: a tool whose input schema is the answer's, and the model made to call it.
    ...(request.json === undefined
      ? {}
      : {
          tools: [
            {
              name: request.json.name,
              description: "Record the answer.",
              input_schema: { type: "object" as const, ...request.json.schema }
            }
          ],
          tool_choice: { type: "tool" as const, name: request.json.name }
        })
  })

  return {
    id,
    model: options.model,
    timeoutMs: options.timeoutMs,
    generate: (request) =>
      Effect.tryPromise({
        try: (signal) => client.messages.create({ ...body(request), stream: false }, { signal }),
        catch: (cause) => classify(id, cause)
      }).pipe(
        Effect.map((message) => {
          const tool = message.content.find((block) => block.type === "tool_use")
          const text =
            tool !== undefined
              ? JSON.stringify(tool.input)
              : message.content.map((block) => (block.type === "text" ? block.text : "")).join("")
          return {
            text,
            usage: { inputTokens: message.usage.input_tokens, outputTokens: message.usage.output_tokens }
          }
        })
      ),
    stream: (request) =>
      Stream.suspend(() => {
        // Anthropic reports input tokens at the start and output tokens at the end.
        let inputTokens = 0
        return streamFromSdk(
          id,
          options.timeoutMs,
          (signal) => client.messages.create({ ...body(request), stream: true }, { signal }),
          (event): ReadonlyArray<StreamEvent> => {
            switch (event.type) {
              case "message_start":
                inputTokens = event.message.usage.input_tokens
                return []
              case "content_block_delta": {
                // A structured answer streams as the forced tool's input, in JSON pieces.
                const text =
                  event.delta.type === "text_delta"
                    ? event.delta.text
                    : event.delta.type === "input_json_delta"
                      ? event.delta.partial_json
                      : ""
                return text === "" ? [] : [{ _tag: "Delta", text }]
              }
              case "message_delta":
                return [{ _tag: "Usage", usage: { inputTokens, outputTokens: event.usage.output_tokens } }]
              default:
                return []
            }
          }
        )
      })
  }
}
