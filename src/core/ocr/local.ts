/**
 * Local OCR: tesseract.js (WebAssembly in worker threads) with the English and French models
 * shipped on npm (`@tesseract.js-data/eng` and `/fra`, `4.0.0_best_int`), entirely offline: a
 * model is read from node_modules (`langPath`, gzipped), nothing is cached on disk
 * (`cacheMethod: "none"`). A read names its language (the session's, which defaults to the
 * user's): French tags (`fr`, `fr-CA`, …) are read with the French model, anything else with the
 * English one.
 *
 * Each language has its own pool of workers, made with its first read (a process that never
 * reads French never loads the French model). Workers live in a pool: created on first use (acquireRelease: each is terminated when it
 * leaves the pool), at most `workers` of them, dropped after `idleMs` without use, all
 * terminated when the layer's scope closes. A worker whose job failed, timed out or was
 * interrupted is replaced. At most `workers` images are read at once (decoding included);
 * further reads wait their turn.
 */
import { Context, Duration, Effect, Layer, Pool, Scope } from "effect"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import type Tesseract from "tesseract.js"
import type { ImageInput } from "../ai/provider.ts"
import { findBubble, pageColour } from "./bubbles.ts"
import { OcrFailed } from "./errors.ts"
import { layoutTranscript, type OcrPage } from "./layout.ts"
import type { PreparedImage } from "./preprocess.ts"
import type { Transcript } from "./transcript.ts"

export interface LocalOcrOptions {
  /** Workers (each one image at a time): how many images are read at once. */
  readonly workers: number
  /** One recognition taking longer fails with `OcrFailed("timeout")` (its worker is replaced). */
  readonly timeoutMs: number
  /** Larger images are refused before being decoded. */
  readonly maxPixels: number
  /** An unused worker is terminated after this long (the next read starts one again, ~0.3 s). */
  readonly idleMs: number
}

export const DEFAULT_LOCAL_OCR_OPTIONS: LocalOcrOptions = {
  workers: 1,
  timeoutMs: 20_000,
  maxPixels: 40_000_000,
  idleMs: 5 * 60_000
}

export interface LocalReadOptions {
  /** A language tag (`en`, `fr-FR`, …); English when absent or not French. */
  readonly language?: string | null
}

export interface LocalOcrShape {
  /** The transcript (engine `local-ocr`); `OcrFailed("no-text")` when no message can be read. */
  readonly read: (image: ImageInput, options?: LocalReadOptions) => Effect.Effect<Transcript, OcrFailed>
}

/** The tesseract models shipped on npm. */
export type OcrModel = "eng" | "fra"

const MODEL_PACKAGES: Record<OcrModel, string> = {
  eng: "@tesseract.js-data/eng/package.json",
  fra: "@tesseract.js-data/fra/package.json"
}

/** The model a language tag is read with. */
export const modelOf = (language: string | null | undefined): OcrModel =>
  /^fr(?:$|[-_])/iu.test(language?.trim() ?? "") ? "fra" : "eng"

/**
 * What an OCR cache entry is kept under, beside the image's hash: a vision read reads any language
 * (`vision:<provider>`); a local read only the language of its model (`local-ocr:<model>`).
 */
export const ocrCacheTag = (engine: string, language: string | null | undefined): string =>
  engine === "local-ocr" ? `local-ocr:${modelOf(language)}` : engine

/** Whether a cached read (its tag) serves a session in `language`: any vision read, a local one of the same model. */
export const ocrCacheServes = (tag: string, language: string | null | undefined): boolean =>
  tag.startsWith("vision:") || tag === ocrCacheTag("local-ocr", language)

/** The folder of an npm-shipped model (`<model>.traineddata.gz`). */
export const modelPath = (model: OcrModel): string =>
  join(dirname(createRequire(import.meta.url).resolve(MODEL_PACKAGES[model])), "4.0.0_best_int")

const engineFailure = (what: string) => (cause: unknown) =>
  new OcrFailed({
    reason: "engine",
    message: `${what}: ${cause instanceof Error ? cause.message.slice(0, 200) : String(cause).slice(0, 200)}`
  })

const acquireWorker = (model: OcrModel) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        // Loaded with the first worker: a process that never reads locally never loads the engine (issue #17).
        const { default: Tesseract } = await import("tesseract.js")
        const worker = await Tesseract.createWorker(model, Tesseract.OEM.LSTM_ONLY, {
          langPath: modelPath(model),
          gzip: true,
          cacheMethod: "none",
          // Without a handler, tesseract.js rethrows a failed job inside its message listener,
          // an uncaught exception; the job's promise is rejected either way.
          errorHandler: () => undefined
        })
        await worker.setParameters({
          tessedit_pageseg_mode: Tesseract.PSM.AUTO,
          // Screenshots carry no resolution; this also silences the engine's "Invalid resolution" warning.
          user_defined_dpi: "300"
        })
        return worker
      },
      catch: engineFailure("The local OCR engine could not start")
    }).pipe(Effect.tap(() => Effect.logDebug("local OCR worker started").pipe(Effect.annotateLogs({ model })))),
    (worker) =>
      Effect.tryPromise(() => worker.terminate()).pipe(
        Effect.tap(() => Effect.logDebug("local OCR worker terminated")),
        Effect.catchAll((cause) => Effect.logWarning("local OCR worker did not terminate cleanly", cause))
      )
  )

const toPage = (page: Tesseract.Page, image: PreparedImage): OcrPage => {
  const background = pageColour(image.colours)
  return {
    width: image.width,
    height: image.height,
    bubbleOf: (line) => findBubble(image.colours, background, line),
    lines: (page.blocks ?? []).flatMap((block) =>
      block.paragraphs.flatMap((paragraph) =>
        paragraph.lines.map((line) => ({
          words: line.words.map((word) => ({ text: word.text, confidence: word.confidence, bbox: word.bbox }))
        }))
      )
    )
  }
}

export class LocalOcr extends Context.Tag("LocalOcr")<LocalOcr, LocalOcrShape>() {
  static make(options: Partial<LocalOcrOptions> = {}) {
    return Effect.gen(function* () {
      const settings = { ...DEFAULT_LOCAL_OCR_OPTIONS, ...options }
      const scope = yield* Effect.scope
      // One pool per model, made with its first read, closed with the layer's scope.
      const poolOf = (model: OcrModel) =>
        Effect.cached(
          Pool.makeWithTTL({
            acquire: acquireWorker(model),
            min: 0,
            max: Math.max(1, settings.workers),
            timeToLive: Duration.millis(settings.idleMs),
            timeToLiveStrategy: "usage"
          }).pipe(Scope.extend(scope))
        )
      const pools: Record<OcrModel, Effect.Effect<Pool.Pool<Tesseract.Worker, OcrFailed>>> = {
        eng: yield* poolOf("eng"),
        fra: yield* poolOf("fra")
      }

      const recognize = (image: PreparedImage, model: OcrModel) =>
        Effect.scoped(
          Effect.gen(function* () {
            const pool = yield* pools[model]
            const worker = yield* pool.get
            return yield* Effect.tryPromise({
              try: () => worker.recognize(image.png, {}, { blocks: true, text: false }),
              catch: engineFailure("The local OCR engine failed")
            }).pipe(
              Effect.timeoutFail({
                duration: Duration.millis(settings.timeoutMs),
                onTimeout: () =>
                  new OcrFailed({ reason: "timeout", message: `Local OCR took longer than ${settings.timeoutMs} ms` })
              }),
              // The job may still be running in that worker: replace it rather than queue behind it.
              Effect.onError(() => pool.invalidate(worker))
            )
          })
        )

      // Decoding and preparing an image takes memory too: a read holds a permit from start to end.
      const permits = yield* Effect.makeSemaphore(Math.max(1, settings.workers))
      // Preparing loads sharp: with the first read, as the engine (issue #17).
      const loadPreprocess = yield* Effect.cached(Effect.orDie(Effect.tryPromise(() => import("./preprocess.ts"))))

      const read = (image: ImageInput, options: LocalReadOptions = {}) =>
        Effect.gen(function* () {
          const { prepareForOcr } = yield* loadPreprocess
          const prepared = yield* prepareForOcr(image.bytes, { maxPixels: settings.maxPixels })
          const result = yield* recognize(prepared, modelOf(options.language))
          const transcript = layoutTranscript(toPage(result.data, prepared))
          if (transcript.messages.length === 0) {
            return yield* new OcrFailed({ reason: "no-text", message: "No chat message could be read in the image" })
          }
          yield* Effect.annotateCurrentSpan({
            "ocr.messages": transcript.messages.length,
            "ocr.confidence": transcript.confidence
          })
          return transcript
        }).pipe(permits.withPermits(1), Effect.withSpan("ocr.local"))

      return LocalOcr.of({ read })
    })
  }

  /** A scoped pool: its workers are terminated when the layer is released. */
  static layer(options: Partial<LocalOcrOptions> = {}): Layer.Layer<LocalOcr> {
    return Layer.scoped(LocalOcr, LocalOcr.make(options))
  }
}
