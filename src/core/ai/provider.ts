/**
 * One interface for every LLM provider: a single answer (text or JSON, optionally about an
 * image) and a stream of text deltas ending with usage. Each SDK layer maps its own errors to
 * `ProviderError`, whose `kind` decides whether the chain moves on to the next provider.
 */
import { type Effect, type Redacted, Schema, type Stream } from "effect"

export const ProviderId = Schema.Literal("gemini-flash", "gpt-4o", "claude-sonnet", "local")
export type ProviderId = typeof ProviderId.Type

export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
}

export interface ImageInput {
  readonly bytes: Uint8Array
  readonly mimeType: "image/png" | "image/jpeg" | "image/webp"
}

export interface ProviderRequest {
  readonly system?: string
  readonly prompt: string
  readonly image?: ImageInput
  /** Ask for JSON matching this JSON Schema (the provider's JSON mode / structured output). */
  readonly json?: {
    readonly name: string
    readonly schema: object
    /** A deterministic valid value, used only by the local provider. */
    readonly example: () => unknown
  }
  readonly maxOutputTokens?: number
  readonly temperature?: number
  /**
   * Hidden reasoning tokens the model may spend before its answer; 0 turns thinking off. Only Gemini
   * 2.5 thinks unasked (and its thinking counts against `maxOutputTokens`); unset, the model's default.
   */
  readonly thinkingBudget?: number
  /** What the local provider says for a text request (deterministic); a generic line otherwise. */
  readonly localText?: () => string
}

export interface ProviderAnswer {
  readonly text: string
  readonly usage: Usage
}

export type StreamEvent =
  { readonly _tag: "Delta"; readonly text: string } | { readonly _tag: "Usage"; readonly usage: Usage }

/**
 * - transient kinds move on to the next provider and count against its circuit breaker;
 * - `invalid_request`: the provider refused the request itself; another would too.
 */
export const ProviderErrorKind = Schema.Literal(
  "timeout",
  "rate_limited",
  "server",
  "network",
  "auth",
  "malformed",
  "invalid_request"
)
export type ProviderErrorKind = typeof ProviderErrorKind.Type

export class ProviderError extends Schema.TaggedError<ProviderError>()("ProviderError", {
  provider: ProviderId,
  kind: ProviderErrorKind,
  status: Schema.optional(Schema.Number),
  message: Schema.String
}) {}

export const isTransient = (error: ProviderError) => error.kind !== "invalid_request"

/** What each SDK layer is built from. */
export interface SdkProviderOptions {
  readonly apiKey: Redacted.Redacted
  readonly model: string
  readonly timeoutMs: number
  /** Another endpoint speaking the same API (proxy, gateway, test fake). */
  readonly baseUrl?: string | undefined
}

export interface AiProvider {
  readonly id: ProviderId
  readonly model: string
  /** Per-attempt timeout for this provider (time to the answer, or to the first delta). */
  readonly timeoutMs: number
  readonly generate: (request: ProviderRequest) => Effect.Effect<ProviderAnswer, ProviderError>
  /**
   * Fails with a `timeout` ProviderError when the provider sends nothing for `timeoutMs` once it has
   * begun (the strategy bounds the wait for the first delta itself; `streamFromSdk` does the rest).
   */
  readonly stream: (request: ProviderRequest) => Stream.Stream<StreamEvent, ProviderError>
}

/**
 * A base URL in either convention: with the API version the SDK's own default carries (OpenAI's
 * `…/v1`, Gemini's `…/v1beta`) or without it (Anthropic's). Each adapter puts the version where its SDK wants it.
 */
export const splitApiVersion = (url: string): { readonly root: string; readonly version: string | undefined } => {
  const trimmed = url.trim().replace(/\/+$/, "")
  const match = /^(.+)\/(v\d+(?:alpha|beta)?)$/.exec(trimmed)
  const [, root, version] = match ?? []
  return root === undefined || version === undefined ? { root: trimmed, version: undefined } : { root, version }
}

/** HTTP status → kind, shared by the SDK layers (each SDK exposes `status` on its API errors). */
export const kindOfStatus = (status: number): ProviderErrorKind => {
  if (status === 429) return "rate_limited"
  if (status === 401 || status === 403) return "auth"
  // 404: a wrong base URL or a model this provider does not serve; another provider may well answer.
  if (status === 404 || status === 408 || status === 409 || status >= 500) return "server"
  return "invalid_request"
}

/** Maps whatever an SDK threw to a ProviderError (abort by interruption is never seen here). */
export const classify = (provider: ProviderId, cause: unknown): ProviderError => {
  const message = cause instanceof Error ? cause.message.slice(0, 300) : "unknown failure"
  const status =
    typeof cause === "object" && cause !== null && "status" in cause && typeof cause.status === "number"
      ? cause.status
      : undefined
  if (status !== undefined) return new ProviderError({ provider, kind: kindOfStatus(status), status, message })
  if (cause instanceof SyntaxError) return new ProviderError({ provider, kind: "malformed", message })
  return new ProviderError({ provider, kind: "network", message })
}
