/**
 * Local OCR for real (tesseract.js + the npm-shipped English model, offline) on chat
 * screenshots generated at test time: the words of every message, the speakers from the
 * bubbles' side, in order; blank and broken images; a bounded pool of workers, all
 * terminated when the layer is released.
 */
import { beforeAll, describe, expect, it, layer } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { makeImageProcessor } from "../../../src/core/image/image-processor.ts"
import { LOCAL_CONFIDENCE_CAP } from "../../../src/core/ocr/layout.ts"
import { LocalOcr } from "../../../src/core/ocr/local.ts"
import { Ocr } from "../../../src/core/ocr/ocr.ts"
import {
  assertFontsRender,
  blankPng,
  type ChatMessage,
  chatScreenshotPng,
  DEFAULT_CHAT,
  DEFAULT_HEADER
} from "../../fixtures/chat-screenshot.ts"
import { eventually } from "../../support/eventually.ts"
import { transcriptProblems } from "./transcript-match.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const png = (bytes: Uint8Array) => ({ bytes, mimeType: "image/png" as const })

layer(LocalOcr.layer(), { timeout: 60_000, excludeTestServices: true })("local OCR (tesseract.js)", (it) => {
  it.effect("reads every message of a generated screenshot, with its speaker, in order", () =>
    Effect.gen(function* () {
      const ocr = yield* LocalOcr
      const transcript = yield* ocr.read(png(screenshot))
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      expect(transcript.engine).toBe("local-ocr")
      expect(transcript.matchName).toBe(DEFAULT_HEADER)
      expect(transcript.app).toBeNull()
      // The status bar's clock is not a message.
      expect(transcript.messages.some((message) => message.text.trim() === "9:41")).toBe(false)
      // The centred separators are no messages: their times go to the messages below them.
      expect(transcript.messages.map((message) => message.sender)).not.toContain("system")
      const times = transcript.messages.map((message) => message.time)
      expect(times).toEqual([...Array<string>(5).fill("Today 9:41 PM"), "10:02 PM"])
      for (const message of transcript.messages) {
        expect(message.confidence).toBeGreaterThan(0.3)
        expect(message.confidence).toBeLessThanOrEqual(LOCAL_CONFIDENCE_CAP)
      }
      expect(transcript.confidence).toBeGreaterThan(0.3)
      expect(transcript.confidence).toBeLessThanOrEqual(LOCAL_CONFIDENCE_CAP)
    })
  )

  it.effect("reads the screenshot as uploads store it (WebP, 1280 px on the long edge)", () =>
    Effect.gen(function* () {
      const processor = yield* makeImageProcessor({
        maxEdge: 1280,
        thumbnailEdge: 320,
        maxPixels: 40_000_000,
        format: "webp",
        quality: 80,
        concurrency: 1
      })
      const normalized = yield* processor.normalize(screenshot)
      expect(normalized.image.width).toBeLessThan(600)
      const ocr = yield* LocalOcr
      const transcript = yield* ocr.read({ bytes: normalized.image.bytes, mimeType: "image/webp" })
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
    })
  )

  it.effect("another conversation: long bubbles, several in a row from each side", () =>
    Effect.gen(function* () {
      const chat: ReadonlyArray<ChatMessage> = [
        { sender: "me", text: "Good morning! Did you sleep well?" },
        { sender: "them", text: "Morning! Yes, finally. The neighbours were quiet for once" },
        { sender: "them", text: "What are your plans for today?" },
        { sender: "me", text: "Coffee first, then a long walk in the park if the weather holds" },
        { sender: "me", text: "Want to join?" },
        { sender: "them", text: "Absolutely, see you at noon" }
      ]
      const ocr = yield* LocalOcr
      const transcript = yield* ocr.read(
        png(yield* Effect.promise(() => chatScreenshotPng({ messages: chat, header: "Sam" })))
      )
      expect(transcriptProblems(transcript, chat)).toEqual([])
      expect(transcript.matchName).toBe("Sam")
    })
  )

  it.effect("a blank image: OcrFailed no-text; bytes that are no image: OcrFailed unreadable-image", () =>
    Effect.gen(function* () {
      const ocr = yield* LocalOcr
      const blank = yield* Effect.flip(ocr.read(png(yield* Effect.promise(() => blankPng()))))
      expect(blank).toMatchObject({ _tag: "OcrFailed", reason: "no-text" })
      const broken = yield* Effect.flip(ocr.read(png(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]))))
      expect(broken).toMatchObject({ _tag: "OcrFailed", reason: "unreadable-image" })
    })
  )
})

/** Live worker threads show up as MessagePort handles in this process. */
const messagePorts = () => process.getActiveResourcesInfo().filter((resource) => resource === "MessagePort").length

/** Waits until `condition` holds (true; the test's timeout if it never does). */
const waitFor = (condition: () => boolean) =>
  eventually(Effect.sync(condition), (holds) => holds, "the worker threads' count")

describe("local OCR workers", () => {
  it.live(
    "at most `workers` at once, all terminated when the layer is released",
    () =>
      Effect.gen(function* () {
        // Workers of the layer above end a few milliseconds after its release.
        yield* waitFor(() => messagePorts() === 0)
        const before = messagePorts()
        const transcripts = yield* Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(LocalOcr.layer({ workers: 2 }))
            const ocr = Context.get(context, LocalOcr)
            const reads = yield* Effect.all(
              [ocr.read(png(screenshot)), ocr.read(png(screenshot)), ocr.read(png(screenshot))],
              { concurrency: "unbounded" }
            )
            const live = messagePorts() - before
            expect(live).toBeGreaterThanOrEqual(1)
            expect(live).toBeLessThanOrEqual(2)
            return reads
          })
        )
        expect(transcripts.map((transcript) => transcriptProblems(transcript, DEFAULT_CHAT))).toEqual([[], [], []])
        expect(yield* waitFor(() => messagePorts() === before)).toBe(true)
      }),
    60_000
  )

  it.live(
    "a recognition over its time limit fails with OcrFailed timeout; its worker is replaced, then terminated",
    () =>
      Effect.gen(function* () {
        yield* waitFor(() => messagePorts() === 0)
        const before = messagePorts()
        yield* Effect.scoped(
          Effect.gen(function* () {
            const context = yield* Layer.build(LocalOcr.layer({ timeoutMs: 5 }))
            const ocr = Context.get(context, LocalOcr)
            const error = yield* Effect.flip(ocr.read(png(screenshot)))
            expect(error).toMatchObject({ _tag: "OcrFailed", reason: "timeout" })
          })
        )
        expect(yield* waitFor(() => messagePorts() === before)).toBe(true)
      }),
    60_000
  )

  it.live(
    "Ocr.localOnly reads without any AI strategy",
    () =>
      Effect.gen(function* () {
        const ocr = yield* Ocr
        expect(ocr.vision).toBe(false)
        const transcript = yield* ocr.read({ feature: "test" }, png(screenshot))
        expect(transcript.engine).toBe("local-ocr")
        expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      }).pipe(Effect.provide(Ocr.localOnly)),
    60_000
  )
})
