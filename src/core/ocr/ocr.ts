/**
 * Reads a chat screenshot into a `Transcript`: first through the AI strategy's vision chain
 * (the structured prompt given by the caller, the image, the `VisionTranscript` schema), the
 * whole read bounded by its own timeout; local OCR (tesseract, see local.ts) is the last
 * fallback.
 *
 * Local OCR takes over when:
 * - the chain holds no vision provider (only the local, deterministic provider: no AI key);
 * - every provider failed (`AiUnavailable`), the answer stayed invalid after the corrective
 *   retry (`AiInvalidOutput`), a provider refused the request (`AiRejected`), or the read took
 *   longer than `visionTimeoutMs` (the provider's request is then aborted);
 * - the answer came from the local provider (a fallback of the chain outside production: its
 *   values are made up) or holds no message;
 * - the answer has two top-level `messages` arrays (the lines streamed were the first's, the value
 *   decoded holds the last).
 * Those AI failures never surface (they are logged, without any image or text). What does:
 * `AiQuotaExceeded` (the user's daily AI budget is spent; nothing was sent, and what follows a
 * transcript would be refused too), and `OcrFailed` when local OCR cannot read anything either.
 *
 * Whatever the engine, a read keeps its first MAX_SCREENSHOT_MESSAGES messages, each made storable
 * and cut at MAX_MESSAGE_CHARS (src/domain/transcript-limits.ts).
 */
import { type ConfigError, Context, Data, Duration, Effect, Layer, Option, Stream } from "effect"
import { storable, storableText } from "../../domain/fields.ts"
import { MAX_MESSAGE_CHARS, MAX_SCREENSHOT_MESSAGES } from "../../domain/transcript-limits.ts"
import type { AiError, AiQuotaExceeded } from "../ai/errors.ts"
import type { ImageInput } from "../ai/provider.ts"
import { AiStrategy, type CallContext, type ObjectEvent } from "../ai/strategy.ts"
import { OcrConfig } from "./config.ts"
import type { OcrFailed } from "./errors.ts"
import { LocalOcr, type LocalOcrOptions, type LocalOcrShape, type LocalReadOptions } from "./local.ts"
import { makeMessageScanner } from "./transcript-stream.ts"
import {
  type Transcript,
  type TranscriptMessage,
  transcriptOfVision,
  type VisionMessage,
  VisionTranscript
} from "./transcript.ts"

/** The vision prompt, versioned (e.g. src/modules/sessions/prompts/ocr-v3.ts). */
export interface OcrPrompt {
  readonly version: string
  readonly system: string
  readonly prompt: string
}

export interface OcrOptions {
  readonly prompt: OcrPrompt
  /** The whole vision read, every provider of the chain included. */
  readonly visionTimeoutMs: number
  readonly maxOutputTokens?: number
}

export interface OcrLayerOptions extends OcrOptions {
  readonly local?: Partial<LocalOcrOptions>
}

export type OcrError = OcrFailed | AiQuotaExceeded

/** A message of a vision read while it streams: provisional, without a confidence (the whole answer's is not known yet). */
export type StreamedMessage = Omit<TranscriptMessage, "confidence">

export interface ReadOptions extends LocalReadOptions {
  /**
   * Told each message of a vision answer as soon as it is written, numbered from 0 in reading order
   * as the transcript will number it (blank ones skipped). Provisional: the transcript returned is
   * what counts (a read that falls back to local OCR, or is retried, does not repeat them).
   */
  readonly onMessage?: (position: number, message: StreamedMessage) => Effect.Effect<void>
}

export interface OcrShape {
  /** `options.language` (the session's) chooses local OCR's model; a vision model reads any language. */
  readonly read: (context: CallContext, image: ImageInput, options?: ReadOptions) => Effect.Effect<Transcript, OcrError>
  /** False when screenshots go straight to local OCR (no vision provider in the chain). */
  readonly vision: boolean
}

/** Why a vision read gave way to local OCR (logged, never returned). */
class VisionFallback extends Data.TaggedError("VisionFallback")<{
  readonly reason:
    | "timeout"
    | "unavailable"
    | "invalid-output"
    | "ambiguous"
    | "rejected"
    | "stream-failed"
    | "local-provider"
    | "no-messages"
}> {}

const DEFAULT_MAX_OUTPUT_TOKENS = 4_096

/**
 * A message as the model wrote it, made storable: PostgreSQL refuses NUL (in a column and in the
 * cached JSON) and a lone surrogate in JSON, so a model writing either would otherwise fail the
 * session; its text cut at MAX_MESSAGE_CHARS, as long as a user's fix may be (a model may write
 * 100 KB in one message). The same for a streamed line as for the transcript, so a line is its message.
 */
const storableMessage = <M extends StreamedMessage>(message: M): M => ({
  ...message,
  text: storableText(message.text, MAX_MESSAGE_CHARS, { multiline: true }),
  time: message.time === null ? null : storable(message.time)
})

/** A read's messages within a transcript's limits: each made storable, the first MAX_SCREENSHOT_MESSAGES of them. */
const withinLimits = (messages: ReadonlyArray<TranscriptMessage>): ReadonlyArray<TranscriptMessage> =>
  messages
    .map(storableMessage)
    .filter((message) => message.text !== "")
    .slice(0, MAX_SCREENSHOT_MESSAGES)

/** Local OCR's read, within a transcript's limits as a vision read is. */
const readLocally = (local: LocalOcrShape, image: ImageInput, options: LocalReadOptions | undefined) =>
  Effect.map(local.read(image, options), (transcript) => ({
    ...transcript,
    messages: withinLimits(transcript.messages)
  }))

const localOnly = (local: LocalOcrShape): OcrShape => ({
  vision: false,
  read: (context, image, options) =>
    readLocally(local, image, options).pipe(
      Effect.withSpan("ocr.read", { attributes: { "ocr.feature": context.feature } })
    )
})

export class Ocr extends Context.Tag("Ocr")<Ocr, OcrShape>() {
  /** Vision chain first, local OCR as the last fallback (local OCR only without a vision provider). */
  static make(options: OcrOptions): Effect.Effect<OcrShape, never, AiStrategy | LocalOcr> {
    return Effect.gen(function* () {
      const ai = yield* AiStrategy
      const local = yield* LocalOcr
      if (!ai.providers.some((provider) => provider.id !== "local")) {
        yield* Effect.logInfo("OCR: no vision provider in the AI chain, screenshots are read by local OCR")
        return localOnly(local)
      }

      /** The vision answer, streamed: messages go to `onMessage` as they are written (never the local provider's). */
      const visionAnswer = (
        context: CallContext,
        image: ImageInput,
        onMessage: ReadOptions["onMessage"]
      ): Effect.Effect<Extract<ObjectEvent<VisionTranscript>, { _tag: "Completed" }>, AiError | VisionFallback> =>
        Effect.gen(function* () {
          const scanner = makeMessageScanner()
          let shown = 0
          // Only the messages the transcript will keep (none past MAX_SCREENSHOT_MESSAGES).
          const show = (messages: ReadonlyArray<VisionMessage>) =>
            Effect.forEach(
              messages.map(({ sender, text, time }) => storableMessage({ sender, text, time: time ?? null })),
              (message) =>
                message.text === "" || onMessage === undefined || shown >= MAX_SCREENSHOT_MESSAGES
                  ? Effect.void
                  : onMessage(shown++, message),
              { discard: true }
            )
          // Chunk by chunk, with an effect only where a message is complete (most deltas complete none).
          let local = false
          let completed: Option.Option<Extract<ObjectEvent<VisionTranscript>, { _tag: "Completed" }>> = Option.none()
          yield* ai
            .streamObject(context, {
              schema: VisionTranscript,
              system: options.prompt.system,
              prompt: options.prompt.prompt,
              image,
              temperature: 0,
              // Reading is not reasoning: thinking would only delay the transcript (and spend its token cap).
              thinkingBudget: 0,
              maxOutputTokens: options.maxOutputTokens ?? DEFAULT_MAX_OUTPUT_TOKENS,
              localValue: () => ({ messages: [], confidence: 0 })
            })
            .pipe(
              Stream.runForEachChunk((chunk) => {
                const messages: Array<VisionMessage> = []
                for (const event of chunk) {
                  if (event._tag === "Started") local = event.local
                  else if (event._tag === "Delta") {
                    if (!local) messages.push(...scanner.push(event.text))
                  } else completed = Option.some(event)
                }
                return messages.length === 0 ? Effect.void : show(messages)
              })
            )
          // The strategy's stream always ends with its `Completed` (or fails): never seen, but not assumed.
          if (Option.isNone(completed)) return yield* new VisionFallback({ reason: "stream-failed" })
          // Two `messages` arrays: the value decoded holds the last, the lines shown came from the first
          // (and the model contradicted itself): not a transcript to keep.
          if (scanner.ambiguous()) return yield* new VisionFallback({ reason: "ambiguous" })
          return completed.value
        })

      const viaVision = (context: CallContext, image: ImageInput, onMessage: ReadOptions["onMessage"]) =>
        visionAnswer(context, image, onMessage).pipe(
          Effect.timeoutFail({
            duration: Duration.millis(options.visionTimeoutMs),
            onTimeout: () => new VisionFallback({ reason: "timeout" })
          }),
          Effect.catchTags({
            AiUnavailable: () => Effect.fail(new VisionFallback({ reason: "unavailable" })),
            AiInvalidOutput: () => Effect.fail(new VisionFallback({ reason: "invalid-output" })),
            AiRejected: () => Effect.fail(new VisionFallback({ reason: "rejected" })),
            AiStreamFailed: () => Effect.fail(new VisionFallback({ reason: "stream-failed" }))
          }),
          Effect.flatMap((result) => {
            if (result.local) return Effect.fail(new VisionFallback({ reason: "local-provider" }))
            const transcript = transcriptOfVision(result.value, `vision:${result.provider}`)
            const messages = withinLimits(transcript.messages)
            if (messages.length === 0) return Effect.fail(new VisionFallback({ reason: "no-messages" }))
            return Effect.succeed<Transcript>({
              ...transcript,
              messages,
              matchName: transcript.matchName === null ? null : storable(transcript.matchName),
              app: transcript.app === null ? null : storable(transcript.app)
            })
          })
        )

      const read = (
        context: CallContext,
        image: ImageInput,
        readOptions?: ReadOptions
      ): Effect.Effect<Transcript, OcrError> =>
        viaVision(context, image, readOptions?.onMessage).pipe(
          Effect.catchTag("VisionFallback", (fallback) =>
            Effect.logWarning("OCR: vision read unusable, falling back to local OCR").pipe(
              Effect.annotateLogs({ reason: fallback.reason, feature: context.feature }),
              Effect.zipRight(readLocally(local, image, readOptions))
            )
          ),
          Effect.tap((transcript) =>
            Effect.annotateCurrentSpan({
              "ocr.engine": transcript.engine,
              "ocr.messages": transcript.messages.length
            })
          ),
          Effect.withSpan("ocr.read", {
            attributes: { "ocr.feature": context.feature, "ocr.prompt": options.prompt.version }
          })
        )

      return Ocr.of({ vision: true, read })
    })
  }

  /** Vision chain + local fallback; the local OCR workers live (and are terminated) with the layer. */
  static layer(options: OcrLayerOptions): Layer.Layer<Ocr, never, AiStrategy> {
    return Layer.effect(Ocr, Ocr.make(options)).pipe(Layer.provide(LocalOcr.layer(options.local)))
  }

  /** Local OCR only (no AI call at all), e.g. for the embedded default. */
  static localOnlyWith(options: Partial<LocalOcrOptions> = {}): Layer.Layer<Ocr> {
    return Layer.effect(Ocr, Effect.map(LocalOcr, localOnly)).pipe(Layer.provide(LocalOcr.layer(options)))
  }

  static readonly localOnly: Layer.Layer<Ocr> = Ocr.localOnlyWith()

  /** `Ocr.layer` with OCR_VISION_TIMEOUT_MS and OCR_LOCAL_* from the environment. */
  static fromConfig(prompt: OcrPrompt): Layer.Layer<Ocr, ConfigError.ConfigError, AiStrategy> {
    return Layer.unwrapEffect(
      Effect.map(OcrConfig, (config) =>
        Ocr.layer({ prompt, visionTimeoutMs: config.visionTimeoutMs, local: config.local })
      )
    )
  }
}
