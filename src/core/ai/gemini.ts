/** Google Gemini (`gemini-flash` in the chain) through @google/genai: generateContent, JSON schema output, SSE streaming. */
import { GoogleGenAI } from "@google/genai"
import { Effect, Redacted, Stream } from "effect"
import {
  type AiProvider,
  classify,
  splitApiVersion,
  type SdkProviderOptions,
  type ProviderRequest,
  type StreamEvent,
  type Usage
} from "./provider.ts"
import { base64, streamFromSdk } from "./sdk-stream.ts"

interface UsageMetadata {
  readonly promptTokenCount?: number | undefined
  readonly candidatesTokenCount?: number | undefined
}

const usageOf = (metadata: UsageMetadata | undefined): Usage => ({
  inputTokens: metadata?.promptTokenCount ?? 0,
  outputTokens: metadata?.candidatesTokenCount ?? 0
})

/** The SDK adds the API version itself: a URL ending in one (`…/v1beta`) sets it instead of doubling it. */
const geminiHttpOptions = (url: string) => {
  const { root, version } = splitApiVersion(url)
  return version === undefined ? { baseUrl: root } : { baseUrl: root, apiVersion: version }
}

export const makeGeminiProvider = (options: SdkProviderOptions): AiProvider => {
  const client = new GoogleGenAI({
    apiKey: Redacted.value(options.apiKey),
    ...(options.baseUrl === undefined ? {} : { httpOptions: geminiHttpOptions(options.baseUrl) })
  })
  const id = "gemini-flash" as const

  const params = (request: ProviderRequest, signal: AbortSignal) => ({
    model: options.model,
    contents: [
      {
        role: "user",
        parts: [
          ...(request.image === undefined
            ? []
            : [{ inlineData: { mimeType: request.image.mimeType, data: base64(request.image.bytes) } }]),
          { text: request.prompt }
        ]
      }
    ],
    config: {
      abortSignal: signal,
      ...(request.system === undefined ? {} : { systemInstruction: request.system }),
      ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.thinkingBudget === undefined ? {} : { thinkingConfig: { thinkingBudget: request.thinkingBudget } }),
      ...(request.json === undefined
        ? {}
        : { responseMimeType: "application/json", responseJsonSchema: request.json.schema })
    }
  })

  return {
    id,
    model: options.model,
    timeoutMs: options.timeoutMs,
    generate: (request) =>
      Effect.tryPromise({
        try: (signal) => client.models.generateContent(params(request, signal)),
        catch: (cause) => classify(id, cause)
      }).pipe(Effect.map((response) => ({ text: response.text ?? "", usage: usageOf(response.usageMetadata) }))),
    stream: (request) =>
      Stream.suspend(() => {
        // Every chunk may carry the running usage; the last one is the total.
        let usage: Usage | undefined
        return streamFromSdk(
          id,
          options.timeoutMs,
          (signal) => client.models.generateContentStream(params(request, signal)),
          (chunk): ReadonlyArray<StreamEvent> => {
            if (chunk.usageMetadata !== undefined) usage = usageOf(chunk.usageMetadata)
            const text = chunk.text
            return text ? [{ _tag: "Delta", text }] : []
          }
        ).pipe(
          Stream.concat(
            Stream.suspend(() => (usage === undefined ? Stream.empty : Stream.make({ _tag: "Usage" as const, usage })))
          )
        )
      })
  }
}
