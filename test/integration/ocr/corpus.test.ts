/**
 * Local OCR for real (tesseract.js, the npm-shipped models) on screenshots of the generated
 * corpus (test/fixtures/chat-corpus.ts): app chrome is never a message, in every style; the
 * screenshots of a scrolled conversation merge without duplicates although each carries the
 * header again; a separator's date and time go to the messages below it; French is read with
 * the French model when the language says so.
 */
import { beforeAll, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { LocalOcr } from "../../../src/core/ocr/local.ts"
import { editDistance, textSimilarity } from "../../../src/core/ocr/overlap.ts"
import type { Transcript } from "../../../src/core/ocr/transcript.ts"
import { mergeTranscripts } from "../../../src/modules/sessions/merge.ts"
import {
  CORPUS_STYLES,
  type CorpusScreenshot,
  corpusSet,
  screenshotPng,
  type TruthMessage
} from "../../fixtures/chat-corpus.ts"
import { assertFontsRender } from "../../fixtures/chat-screenshot.ts"

beforeAll(async () => {
  await assertFontsRender()
})

const read = (shot: CorpusScreenshot, language: string = shot.language) =>
  Effect.gen(function* () {
    const ocr = yield* LocalOcr
    const bytes = yield* Effect.promise(() => screenshotPng(shot))
    return yield* ocr.read({ bytes, mimeType: "image/png" }, { language })
  })

/** Read messages that are a chrome line of `shot` (or contain one, if longer than a name). */
const chromeRead = (shot: CorpusScreenshot, transcript: Transcript) =>
  transcript.messages.filter((message) =>
    shot.chrome.some(
      (line) => textSimilarity(line, message.text) >= 0.5 || (line.length >= 6 && message.text.includes(line))
    )
  )

/** Expected messages with no read message of the same sender at least 0.8 similar. */
const missed = (expected: ReadonlyArray<TruthMessage>, messages: Transcript["messages"]) =>
  expected.filter(
    (truth) =>
      !messages.some((message) => message.sender === truth.sender && textSimilarity(truth.text, message.text) >= 0.8)
  )

layer(LocalOcr.layer(), { timeout: 120_000, excludeTestServices: true })("local OCR on the corpus", (it) => {
  it.effect("chrome is never a message, in every app style; a name read is the header's", () =>
    Effect.gen(function* () {
      for (const [index, style] of CORPUS_STYLES.entries()) {
        const shot = corpusSet(1000 + index, style, "en", 1).screenshots[0]
        if (shot === undefined) throw new Error("no screenshot")
        const transcript = yield* read(shot)
        expect({ style, chrome: chromeRead(shot, transcript).map((message) => message.text) }).toEqual({
          style,
          chrome: []
        })
        expect({ style, missed: missed(shot.messages, transcript.messages).map((m) => m.text) }).toEqual({
          style,
          missed: []
        })
        // The name, when read, is the header's (white on a coloured band it may not be read at all).
        expect({ style, name: transcript.matchName ?? shot.matchName }).toEqual({ style, name: shot.matchName })
      }
    })
  )

  it.effect("three overlapping screenshots, each with the header again, merge without a duplicate", () =>
    Effect.gen(function* () {
      const set = corpusSet(77, "whatsapp-light", "en", 3)
      expect(set.screenshots).toHaveLength(3)
      const transcripts = yield* Effect.forEach(set.screenshots, (shot) => read(shot))
      const merged = mergeTranscripts(transcripts.map((transcript) => transcript.messages))
      expect(missed(set.messages, merged).map((message) => message.text)).toEqual([])
      expect(merged).toHaveLength(set.messages.length)
    })
  )

  it.effect("a separator's date and time become the time of the messages below it", () =>
    Effect.gen(function* () {
      const shot = corpusSet(5, "imessage-light", "en", 1).screenshots[0]
      if (shot === undefined) throw new Error("no screenshot")
      const transcript = yield* read(shot)
      let expectedTime: string | null = null
      const pairs = shot.messages.map((truth) => {
        expectedTime = truth.separatorTime ?? expectedTime
        const message = transcript.messages.find((candidate) => textSimilarity(truth.text, candidate.text) >= 0.8)
        return { expected: expectedTime, read: message?.time ?? null }
      })
      expect(pairs.some((pair) => pair.expected !== null)).toBe(true)
      for (const pair of pairs) {
        expect(pair.read).not.toBeNull()
        expect(textSimilarity(pair.expected ?? "", pair.read ?? "")).toBeGreaterThanOrEqual(0.8)
      }
    })
  )

  it.effect("French is read with the French model: accents kept, fewer errors than with the English one", () =>
    Effect.gen(function* () {
      const shot = corpusSet(31, "tinder", "fr", 1).screenshots[0]
      if (shot === undefined) throw new Error("no screenshot")
      const errors = (transcript: Transcript) =>
        shot.messages.reduce((total, truth) => {
          const message = transcript.messages.find((candidate) => textSimilarity(truth.text, candidate.text) >= 0.6)
          return total + editDistance(truth.text, message?.text ?? "")
        }, 0)
      const chars = shot.messages.reduce((total, truth) => total + truth.text.length, 0)
      const french = yield* read(shot, "fr-FR")
      const english = yield* read(shot, "en")
      expect(missed(shot.messages, french.messages).map((message) => message.text)).toEqual([])
      expect(errors(french) / chars).toBeLessThanOrEqual(0.02)
      expect(errors(french)).toBeLessThan(errors(english))
      // The accents the English model drops ("A tout a I'heure") are read.
      const accents = (texts: ReadonlyArray<string>) => texts.join(" ").match(/[àâçéèêëîïôûùœ]/gu)?.length ?? 0
      const drawn = accents(shot.messages.map((truth) => truth.text))
      expect(drawn).toBeGreaterThan(0)
      expect(accents(french.messages.map((message) => message.text))).toBeGreaterThanOrEqual(drawn - 1)
    })
  )
})
