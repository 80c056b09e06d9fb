/**
 * From OCR lines to a transcript, on synthetic geometry: speakers from bubble (or line)
 * position, lines grouped into messages, times, header, noise, confidence.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  type Box,
  layoutTranscript,
  LOCAL_CONFIDENCE_CAP,
  type OcrLine,
  type OcrPage,
  type OcrWord,
  placeOf
} from "../../../../src/core/ocr/layout.ts"

const WIDTH = 1000
const HEIGHT = 2000
const CHAR = 18
const HEIGHT_OF_LINE = 40

/** A line of words laid out from (x, y), each character CHAR wide. */
const line = (
  text: string,
  x: number,
  y: number,
  options: {
    readonly confidence?: number
    readonly height?: number
    readonly gapBefore?: ReadonlyArray<number>
    /** Width of a character (CHAR unless given). */
    readonly char?: number
  } = {}
): OcrLine => {
  const words: Array<OcrWord> = []
  let cursor = x
  text.split(" ").forEach((token, index) => {
    cursor += options.gapBefore?.[index] ?? 0
    const width = token.length * (options.char ?? CHAR)
    words.push({
      text: token,
      confidence: options.confidence ?? 92,
      bbox: { x0: cursor, y0: y, x1: cursor + width, y1: y + (options.height ?? HEIGHT_OF_LINE) }
    })
    cursor += width + (options.char ?? CHAR)
  })
  return { words }
}

const page = (lines: ReadonlyArray<OcrLine>, bubbles: ReadonlyArray<Box> = []): OcrPage => ({
  width: WIDTH,
  height: HEIGHT,
  lines,
  bubbleOf: (box) =>
    bubbles.find((bubble) => box.x0 >= bubble.x0 && box.x1 <= bubble.x1 && box.y0 >= bubble.y0 && box.y1 <= bubble.y1)
})

const summary = (p: OcrPage) => layoutTranscript(p).messages.map((message) => [message.sender, message.text])

describe("placeOf", () => {
  it("left of the middle is them, right is me, narrow and centred is system", () => {
    expect(placeOf({ x0: 40, y0: 0, x1: 500, y1: 40 }, WIDTH).kind).toBe("them")
    expect(placeOf({ x0: 500, y0: 0, x1: 960, y1: 40 }, WIDTH).kind).toBe("me")
    expect(placeOf({ x0: 420, y0: 0, x1: 580, y1: 40 }, WIDTH).kind).toBe("system")
    // Wide and centred: a side, but ambiguous.
    expect(placeOf({ x0: 60, y0: 0, x1: 930, y1: 40 }, WIDTH)).toEqual({ kind: "them", ambiguous: true })
  })
})

describe("layoutTranscript", () => {
  it("attributes lines without bubbles by their own position, in order top to bottom", () => {
    expect(
      summary(
        page([
          // Out of order on purpose: the engine may list blocks column by column.
          line("Sounds good", 700, 400),
          line("Hey there", 60, 300)
        ])
      )
    ).toEqual([
      ["them", "Hey there"],
      ["me", "Sounds good"]
    ])
  })

  it("places a line by its bubble: a wide right bubble with left-aligned text is me", () => {
    // The text alone (x 280–780) would sit in the middle; its bubble hugs the right edge.
    const bubble = { x0: 250, y0: 290, x1: 970, y1: 420 }
    const transcript = layoutTranscript(
      page([line("Pretty good I went hiking", 280, 300), line("near the lake", 280, 360)], [bubble])
    )
    expect(transcript.messages).toEqual([
      expect.objectContaining({ sender: "me", text: "Pretty good I went hiking near the lake" })
    ])
  })

  it("splits consecutive bubbles of the same sender into separate messages", () => {
    const first = { x0: 500, y0: 290, x1: 970, y1: 360 }
    const second = { x0: 600, y0: 370, x1: 970, y1: 440 }
    expect(summary(page([line("First one", 530, 305), line("Second", 630, 385)], [first, second]))).toEqual([
      ["me", "First one"],
      ["me", "Second"]
    ])
  })

  it("without bubbles, groups close lines with the same left edge and splits on larger gaps", () => {
    expect(
      summary(
        page([
          line("That sounds amazing Which", 60, 300),
          line("trail did you take", 60, 350),
          line("Another message", 60, 460)
        ])
      )
    ).toEqual([
      ["them", "That sounds amazing Which trail did you take"],
      ["them", "Another message"]
    ])
  })

  it("drops the status bar, takes the centred name at the top as the match's name", () => {
    const transcript = layoutTranscript(
      page([
        line("9:41", 60, 20, { height: 30 }),
        line("100%", 880, 20, { height: 30 }),
        line("Alex", 464, 110),
        line("Hi", 60, 300)
      ])
    )
    expect(transcript.matchName).toBe("Alex")
    expect(transcript.messages.map((message) => message.text)).toEqual(["Hi"])
  })

  it("a centred date at the top is no name and no message: its time goes to the messages below", () => {
    const transcript = layoutTranscript(page([line("Today 9:41 PM", 380, 260), line("Hi", 60, 300)]))
    expect(transcript.matchName).toBeNull()
    expect(transcript.messages).toEqual([
      expect.objectContaining({ sender: "them", text: "Hi", time: "Today 9:41 PM" })
    ])
  })

  it("chrome is never a message: header band, separators, receipts, banner, typing dots, input bar", () => {
    const them = (y: number, h = 80) => ({ x0: 40, y0: y, x1: 560, y1: y + h })
    const me = (y: number, h = 80) => ({ x0: 440, y0: y, x1: 960, y1: y + h })
    const transcript = layoutTranscript(
      page(
        [
          // Status bar and header: clock, battery, back arrow, name, subtitle.
          line("9:41", 60, 20, { height: 30 }),
          line("87%", 880, 20, { height: 30 }),
          line("Alex", 130, 110),
          line("online", 130, 160, { height: 26 }),
          // A separator (centred, outside bubbles).
          line("Yesterday 18:40", 365, 250, { height: 28 }),
          line("Hey! How was your weekend", 60, 320),
          line("Pretty good thanks", 460, 420),
          // A read receipt: small grey text under the owner's bubble.
          line("Seen 7:02 PM", 800, 505, { height: 26, char: 12 }),
          // A "new messages" banner across the page.
          line("2 UNREAD MESSAGES", 340, 560, { height: 28 }),
          line("Tue, 3 Jun 09:15", 356, 640, { height: 28 }),
          line("Coffee tomorrow", 60, 720),
          // Typing dots read as letters, in a small bubble, last on the page.
          line("ooo", 70, 830, { height: 14 }),
          // The input bar.
          line("Type a message", 80, 1900, { height: 34 })
        ],
        [them(300), me(400), { x0: 0, y0: 550, x1: 1000, y1: 600 }, them(700), { x0: 40, y0: 810, x1: 160, y1: 870 }]
      )
    )
    expect(transcript.matchName).toBe("Alex")
    expect(transcript.messages.map((message) => [message.sender, message.text, message.time])).toEqual([
      ["them", "Hey! How was your weekend", "Yesterday 18:40"],
      ["me", "Pretty good thanks", "Yesterday 18:40"],
      ["them", "Coffee tomorrow", "Tue, 3 Jun 09:15"]
    ])
  })

  it("a receipt read with a box as tall as a message's is still chrome: its narrower characters tell", () => {
    // Measured on the normalised image the pipeline reads (bench:ocr): a receipt's characters stay
    // ~0.75–0.85 of the bubbles' width while its box came out 1–1.3 times their text's height.
    const me = (y: number) => ({ x0: 440, y0: y, x1: 960, y1: y + 80 })
    const them = (y: number) => ({ x0: 40, y0: y, x1: 560, y1: y + 80 })
    const receipts = ["Read", "Vu à 13:11", "Lu à 13:43"].map((text, index) =>
      line(text, 960 - text.length * 14, 505 + index * 300, { height: HEIGHT_OF_LINE, char: 14 })
    )
    const transcript = layoutTranscript(
      page(
        [
          line("Hey! How was your weekend", 60, 320),
          line("Pretty good thanks", 460, 420),
          receipts[0]!,
          line("Glad to hear", 60, 620),
          line("Coffee tomorrow?", 460, 720),
          receipts[1]!,
          line("Sure", 60, 920),
          line("Great, see you", 460, 1020),
          receipts[2]!
        ],
        [them(300), me(400), them(600), me(700), them(900), me(1000)]
      )
    )
    expect(transcript.messages.map((message) => [message.sender, message.text])).toEqual([
      ["them", "Hey! How was your weekend"],
      ["me", "Pretty good thanks"],
      ["them", "Glad to hear"],
      ["me", "Coffee tomorrow?"],
      ["them", "Sure"],
      ["me", "Great, see you"]
    ])
  })

  it("a line whose own bubble was not found takes the bubble it lies in, found for another line", () => {
    // Measured on the normalised image: the sample left of a short last line fell on the bubble's
    // rounded corner, and the line ("a night", left of the middle) was read as the other person's.
    const bubble = { x0: 300, y0: 590, x1: 960, y1: 720 }
    const first = line("Are you a morning person or", 330, 600)
    const last = line("a night owl?", 330, 660)
    const transcript = layoutTranscript({
      width: WIDTH,
      height: HEIGHT,
      lines: [line("What are you up to tonight?", 60, 320), first, last],
      bubbleOf: (box) =>
        box.y0 >= 600 && box.y0 < 650 ? bubble : box.y0 < 400 ? { x0: 40, y0: 300, x1: 600, y1: 380 } : undefined
    })
    expect(transcript.messages.map((message) => [message.sender, message.text])).toEqual([
      ["them", "What are you up to tonight?"],
      ["me", "Are you a morning person or a night owl?"]
    ])
  })

  it("a time alone inside the bubble, or set apart at the end of a line, is the message's time", () => {
    const bubble = { x0: 40, y0: 290, x1: 600, y1: 420 }
    const alone = layoutTranscript(
      page([line("See you there", 60, 300), line("10:02", 480, 360, { height: 30 })], [bubble])
    )
    expect(alone.messages).toEqual([expect.objectContaining({ sender: "them", text: "See you there", time: "10:02" })])

    const apart = layoutTranscript(page([line("See you there 10:02 PM", 60, 300, { gapBefore: [0, 0, 0, 200] })]))
    expect(apart.messages).toEqual([expect.objectContaining({ text: "See you there", time: "10:02 PM" })])

    // A time that is part of the sentence stays in the text.
    const inline = layoutTranscript(page([line("Meet at 7:30", 60, 300)]))
    expect(inline.messages).toEqual([expect.objectContaining({ text: "Meet at 7:30", time: null })])
  })

  it("reads a bar of the text's height as the pronoun I and drops bubble edges and unsure words", () => {
    const withBar: OcrLine = {
      words: [
        { text: "|", confidence: 80, bbox: { x0: 60, y0: 300, x1: 66, y1: 340 } },
        { text: "would", confidence: 95, bbox: { x0: 84, y0: 300, x1: 174, y1: 340 } },
        { text: "love", confidence: 95, bbox: { x0: 192, y0: 300, x1: 264, y1: 340 } },
        { text: "qx%z", confidence: 12, bbox: { x0: 282, y0: 300, x1: 354, y1: 340 } },
        // A bubble's edge: as tall as the bubble.
        { text: "|", confidence: 70, bbox: { x0: 590, y0: 280, x1: 596, y1: 420 } },
        { text: "~", confidence: 90, bbox: { x0: 20, y0: 300, x1: 30, y1: 340 } }
      ]
    }
    expect(summary(page([withBar]))).toEqual([["them", "I would love"]])
  })

  it("confidence: the engine's, scaled to 0..1 and capped; halved when the side is ambiguous", () => {
    const sure = layoutTranscript(page([line("Hello there", 60, 300, { confidence: 100 })]))
    expect(sure.messages[0]?.confidence).toBeCloseTo(LOCAL_CONFIDENCE_CAP)
    expect(sure.confidence).toBeCloseTo(LOCAL_CONFIDENCE_CAP)

    const mixed = layoutTranscript(
      page([line("Hello there", 60, 300, { confidence: 90 }), line("Yes", 900, 400, { confidence: 60 })])
    )
    const [first, second] = mixed.messages
    expect(first?.confidence).toBeCloseTo(0.9 * LOCAL_CONFIDENCE_CAP)
    expect(second?.confidence).toBeCloseTo(0.6 * LOCAL_CONFIDENCE_CAP)
    // Weighted by characters: "Hello there" (11) outweighs "Yes" (3).
    expect(mixed.confidence).toBeCloseTo(((11 * 0.9 + 3 * 0.6) / 14) * LOCAL_CONFIDENCE_CAP, 2)

    const ambiguous = layoutTranscript(page([line("A very long line that spans the whole screen", 100, 300)]))
    expect(ambiguous.messages[0]?.confidence).toBeCloseTo(0.92 * LOCAL_CONFIDENCE_CAP * 0.5)
  })

  it("nothing legible: no messages, engine local-ocr", () => {
    expect(layoutTranscript(page([]))).toEqual({
      messages: [],
      matchName: null,
      app: null,
      confidence: 0,
      engine: "local-ocr"
    })
    expect(layoutTranscript(page([line("x7 qq", 60, 300, { confidence: 20 })])).messages).toEqual([])
  })
})
