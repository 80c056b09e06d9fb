/**
 * The local provider of the embedded default: deterministic, offline, instant, and labelled
 * (`id: "local"`, so responses' metadata and the ledger say so). Never in production's chain.
 */
import { createHash } from "node:crypto"
import { Arbitrary, Effect, FastCheck, Schema, Stream } from "effect"
import type { AiProvider, ProviderRequest, StreamEvent, Usage } from "./provider.ts"

/** A valid value of `schema`, the same for the same prompt: what the local provider answers. */
export const localExampleOf = <A, I>(schema: Schema.Schema<A, I>, prompt: string, localValue?: () => A): unknown => {
  const value =
    localValue?.() ??
    FastCheck.sample(Arbitrary.make(schema), {
      numRuns: 1,
      seed: createHash("sha256").update(prompt).digest().readInt32BE(0)
    })[0]
  return Schema.encodeSync(schema)(value as A)
}

const estimateTokens = (text: string) => Math.max(1, Math.ceil(text.length / 4))

const genericText = (request: ProviderRequest) => {
  const digest = createHash("sha256").update(request.prompt).digest("hex").slice(0, 8)
  return `This answer comes from Wingmate's local provider (offline, deterministic; reference ${digest}). Configure an AI provider key for real answers.`
}

const answer = (request: ProviderRequest) =>
  request.json !== undefined
    ? JSON.stringify(request.json.example())
    : (request.localText ?? (() => genericText(request)))()

const usageOf = (request: ProviderRequest, text: string): Usage => ({
  inputTokens: estimateTokens(`${request.system ?? ""}${request.prompt}`),
  outputTokens: estimateTokens(text)
})

/** Word-sized deltas, so the stream looks like a real one to the app. */
const chunksOf = (text: string) => text.match(/\S+\s*/g) ?? [text]

export const makeLocalProvider = (): AiProvider => ({
  id: "local",
  model: "local-deterministic",
  timeoutMs: 5_000,
  generate: (request) =>
    Effect.sync(() => {
      const text = answer(request)
      return { text, usage: usageOf(request, text) }
    }),
  stream: (request) =>
    Stream.suspend(() => {
      const text = answer(request)
      const deltas: ReadonlyArray<StreamEvent> = chunksOf(text).map((chunk) => ({ _tag: "Delta", text: chunk }))
      return Stream.fromIterable([...deltas, { _tag: "Usage", usage: usageOf(request, text) } satisfies StreamEvent])
    })
})
