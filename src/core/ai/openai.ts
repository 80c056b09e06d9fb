/** OpenAI (`gpt-4o` in the chain) through the official SDK: Chat Completions, JSON schema output, streaming with usage. */
import { Effect, Redacted } from "effect"
import OpenAI from "openai"
import {
  type AiProvider,
  classify,
  splitApiVersion,
  type SdkProviderOptions,
  type ProviderRequest,
  type StreamEvent
} from "./provider.ts"
import { base64, streamFromSdk } from "./sdk-stream.ts"

/** `https://host` and `https://host/v1` both mean the API at `https://host/v1` (the SDK's convention). */
const openAiBaseUrl = (url: string) => {
  const { root, version } = splitApiVersion(url)
  return `${root}/${version ?? "v1"}`
}

export const makeOpenAiProvider = (options: SdkProviderOptions): AiProvider => {
  // Retries and timeouts belong to the chain, which aborts the request on interruption.
  const client = new OpenAI({
    apiKey: Redacted.value(options.apiKey),
    maxRetries: 0,
    // The SDK's own logging writes a malformed stream frame (the model's text) to the console; the
    // chain logs its failures itself, without any text.
    logLevel: "off",
    ...(options.baseUrl === undefined ? {} : { baseURL: openAiBaseUrl(options.baseUrl) })
  })
  const id = "gpt-4o" as const

  const body = (request: ProviderRequest) => ({
    model: options.model,
    messages: [
      ...(request.system === undefined ? [] : [{ role: "system" as const, content: request.system }]),
      {
        role: "user" as const,
        content:
          request.image === undefined
            ? request.prompt
            : [
                { type: "text" as const, text: request.prompt },
                {
                  type: "image_url" as const,
                  image_url: { url: `data:${request.image.mimeType};base64,${base64(request.image.bytes)}` }
                }
              ]
      }
    ],
    ...(request.maxOutputTokens === undefined ? {} : { max_completion_tokens: request.maxOutputTokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.json === undefined
      ? {}
      : {
          response_format: {
            type: "json_schema" as const,
            json_schema: { name: request.json.name, schema: { ...request.json.schema } }
          }
        })
  })

  return {
    id,
    model: options.model,
    timeoutMs: options.timeoutMs,
    generate: (request) =>
      Effect.tryPromise({
        try: (signal) => client.chat.completions.create({ ...body(request), stream: false }, { signal }),
        catch: (cause) => classify(id, cause)
      }).pipe(
        Effect.map((completion) => ({
          text: completion.choices[0]?.message.content ?? "",
          usage: {
            inputTokens: completion.usage?.prompt_tokens ?? 0,
            outputTokens: completion.usage?.completion_tokens ?? 0
          }
        }))
      ),
    stream: (request) =>
      streamFromSdk(
        id,
        options.timeoutMs,
        (signal) =>
          client.chat.completions.create(
            { ...body(request), stream: true, stream_options: { include_usage: true } },
            { signal }
          ),
        (chunk): ReadonlyArray<StreamEvent> => {
          const text = chunk.choices[0]?.delta.content
          return [
            ...(text ? [{ _tag: "Delta" as const, text }] : []),
            ...(chunk.usage
              ? [
                  {
                    _tag: "Usage" as const,
                    usage: { inputTokens: chunk.usage.prompt_tokens, outputTokens: chunk.usage.completion_tokens }
                  }
                ]
              : [])
          ]
        }
      )
  }
}
