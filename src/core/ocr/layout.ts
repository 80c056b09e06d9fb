/**
 * From OCR words with their boxes to a chat transcript: pure geometry, no OCR engine here.
 *
 * - Words read with little confidence, and marks without a letter or digit (bubble edges read
 *   as `|`, `~`, …), are dropped; so are status-bar lines (clock, battery) at the very top.
 * - Each line is placed by its bubble when it has one (`bubbleOf`, see bubbles.ts), by its own
 *   box otherwise. A box that is narrow and centred on the page is `system` (dates, times,
 *   "You matched" pills); otherwise a box whose centre is left of the middle is `them`, right
 *   of it `me` (chat apps align the owner's bubbles right). A box almost exactly centred is
 *   ambiguous: its confidence is halved.
 * - Lines in the same bubble are one message; without bubbles, lines follow each other in a
 *   message while they are close vertically and start at the same left edge. A line that is
 *   only a time inside a bubble, or a time set apart at the end of a line (WhatsApp-style),
 *   becomes the message's `time`.
 * - A short, capitalised, centred line at the top, before any message, without digits or date
 *   words, is taken as the chat header: the match's display name.
 * - Confidence: the engine's word confidences (0–100), averaged per message weighted by
 *   characters, scaled to 0..1 and multiplied by `LOCAL_CONFIDENCE_CAP` (speaker attribution
 *   is a heuristic, so a local reading never claims more than that); the overall confidence is
 *   the messages' average weighted by characters.
 */
import type { Transcript, TranscriptMessage } from "./transcript.ts"

/** A local reading never reports more confidence than this. */
export const LOCAL_CONFIDENCE_CAP = 0.6

export interface Box {
  readonly x0: number
  readonly y0: number
  readonly x1: number
  readonly y1: number
}

export interface OcrWord {
  readonly text: string
  /** 0–100, as the engine reports it. */
  readonly confidence: number
  readonly bbox: Box
}

export interface OcrLine {
  readonly words: ReadonlyArray<OcrWord>
}

export interface OcrPage {
  readonly width: number
  readonly height: number
  readonly lines: ReadonlyArray<OcrLine>
  /** The bubble around a line's box, if any (page coordinates). */
  readonly bubbleOf?: (line: Box) => Box | undefined
}

type Sender = TranscriptMessage["sender"]

const MIN_WORD_CONFIDENCE = 30
const MIN_LINE_CONFIDENCE = 45
/** Lines entirely above this fraction of the height may be the phone's status bar. */
const STATUS_BAR = 0.06
/** A centred box narrower than this fraction of the width is a system line. */
const SYSTEM_MAX_WIDTH = 0.5
const SYSTEM_MAX_OFFSET = 0.08
/** Words smaller than this fraction of the line's text height are captions (times, ticks). */
const SMALL = 0.78
/** A "bubble" wider than this fraction of the width is a band across the page. */
const BAND = 0.8
/** A bubble starts (them) or ends (me) within this fraction of the width from the edge. */
const SIDE = 0.2
const AMBIGUOUS_OFFSET = 0.03

const ALPHANUMERIC = /[\p{L}\p{N}]/u
const PUNCTUATION_ONLY = /^[?!.…]+$/u
const TIME = /\b\d{1,2}[:.]\d{2}(?:\s?[AaPp]\.?[Mm]\.?)?/u
/** A time, possibly followed by read-receipt ticks read as a short mark. */
const TIME_ONLY = /^\d{1,2}[:.]\d{2}(?:\s?[AaPp]\.?[Mm]\.?)?(?:\s+\S{1,3})?$/u
const MERIDIEM = /^[AaPp]\.?[Mm]\.?$/u
/** A date's words, in English and French, whole (a name such as "Martin" or "Maya" is none). */
const DATE_WORDS =
  /\b(?:today|yesterday|mon(?:day)?|tues?(?:day)?|wed(?:nesday)?|thu(?:rs?)?(?:day)?|fri(?:day)?|sat(?:urday)?|sun(?:day)?|jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|aujourd'hui|hier|lun(?:di)?|mardi|mer(?:credi)?|jeu(?:di)?|ven(?:dredi)?|sam(?:edi)?|dim(?:anche)?|janv(?:ier)?|f[ée]vr?(?:ier)?|mars|avr(?:il)?|mai|juin|juil(?:let)?|ao[ûu]t|sept(?:embre)?|octobre|novembre|d[ée]c(?:embre)?)(?![\p{L}])/iu

interface Line {
  readonly text: string
  readonly box: Box
  readonly bubble: Box | undefined
  /** On a band across the page (header, banner, input field). */
  readonly band: boolean
  /** A time set apart at the end of the line. */
  readonly time: string | null
  /** 0–100, weighted by characters. */
  readonly confidence: number
  readonly chars: number
  readonly kind: Sender
  readonly ambiguous: boolean
}

interface Group {
  readonly sender: Sender
  readonly lines: Array<Line>
  time: string | null
}

const height = (box: Box) => box.y1 - box.y0

const union = (boxes: ReadonlyArray<Box>): Box => ({
  x0: Math.min(...boxes.map((b) => b.x0)),
  y0: Math.min(...boxes.map((b) => b.y0)),
  x1: Math.max(...boxes.map((b) => b.x1)),
  y1: Math.max(...boxes.map((b) => b.y1))
})

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

const weightedConfidence = (items: ReadonlyArray<{ readonly confidence: number; readonly chars: number }>) => {
  const chars = items.reduce((total, item) => total + item.chars, 0)
  return chars === 0 ? 0 : items.reduce((total, item) => total + item.confidence * item.chars, 0) / chars
}

const round = (value: number) => Math.round(value * 1000) / 1000

/**
 * A capital I is a bare vertical bar in most UI fonts: the engine reads it as `|`. Inside the
 * line's band (no taller than the other words) it is taken back as "I"; a taller bar is a
 * bubble's edge and is dropped with the other marks.
 */
const restoreCapitalI = (words: ReadonlyArray<OcrWord>): ReadonlyArray<OcrWord> => {
  const textHeight = median(words.filter((word) => ALPHANUMERIC.test(word.text)).map((word) => height(word.bbox)))
  return words.map((word) =>
    /^\|(?:['’]\p{L}+)?$/u.test(word.text.trim()) && textHeight > 0 && height(word.bbox) <= textHeight * 1.3
      ? { ...word, text: word.text.trim().replace("|", "I") }
      : word
  )
}

const keepWord = (word: OcrWord) => {
  const text = word.text.trim()
  if (text === "" || word.confidence < MIN_WORD_CONFIDENCE) return false
  return ALPHANUMERIC.test(text) || (PUNCTUATION_ONLY.test(text) && word.confidence >= 60)
}

/** Where a box sits: centred and narrow (system), or left (them) / right (me) of the middle. */
export const placeOf = (box: Box, pageWidth: number): { readonly kind: Sender; readonly ambiguous: boolean } => {
  const offset = (box.x0 + box.x1) / 2 / pageWidth - 0.5
  const width = (box.x1 - box.x0) / pageWidth
  if (Math.abs(offset) < SYSTEM_MAX_OFFSET && width < SYSTEM_MAX_WIDTH) return { kind: "system", ambiguous: false }
  return { kind: offset < 0 ? "them" : "me", ambiguous: Math.abs(offset) < AMBIGUOUS_OFFSET }
}

/** A time at the end of the line, more than one and a half line heights from the text before it. */
const splitTrailingTime = (words: ReadonlyArray<OcrWord>): { words: ReadonlyArray<OcrWord>; time: string | null } => {
  const last = words.at(-1)
  const timeWords = last !== undefined && MERIDIEM.test(last.text) ? 2 : 1
  const tail = words.slice(-timeWords)
  const before = words.at(-timeWords - 1)
  const first = tail[0]
  if (before === undefined || first === undefined) return { words, time: null }
  const text = tail.map((word) => word.text).join(" ")
  const apart = first.bbox.x0 - before.bbox.x1 > height(first.bbox) * 1.5
  if (apart && TIME_ONLY.test(text)) return { words: words.slice(0, -timeWords), time: text }
  // A time printed smaller in the bubble's corner, its colon misread ("1013", "22°02", "19 36"),
  // maybe with ticks after it: small trailing words with digits, or marks of two characters
  // without a letter (a short word such as "me" is small too, but stays).
  const textHeight = median(words.map((word) => height(word.bbox)))
  let cut = words.length
  while (cut > 1) {
    const word = words[cut - 1]
    if (word === undefined || height(word.bbox) >= SMALL * textHeight) break
    if (!/\d/u.test(word.text) && !/^[^\p{L}]{1,2}$/u.test(word.text)) break
    cut -= 1
  }
  if (cut < words.length) {
    const digits = words
      .slice(cut)
      .map((word) => word.text)
      .join("")
    return { words: words.slice(0, cut), time: clockOf(digits) }
  }
  return { words, time: null }
}

const cleanLine = (line: OcrLine, page: OcrPage): Line | undefined => {
  const kept = restoreCapitalI(line.words)
    .filter(keepWord)
    .map((word) => ({ ...word, text: word.text.trim() }))
  const { words, time } = splitTrailingTime(kept)
  if (words.length === 0) return undefined
  const text = words.map((word) => word.text).join(" ")
  const box = union(words.map((word) => word.bbox))
  const confidence = weightedConfidence(words.map((word) => ({ confidence: word.confidence, chars: word.text.length })))
  if (confidence < MIN_LINE_CONFIDENCE) return undefined
  if (box.y1 < page.height * STATUS_BAR && !/\p{L}{3,}/u.test(text)) return undefined
  const found = page.bubbleOf?.(box)
  // A coloured area nearly as wide as the page is a band (header, banner, input field), not a
  // bubble; nor is one that hugs neither side (a date's pill, an avatar).
  const band = found !== undefined && found.x1 - found.x0 > BAND * page.width
  const hugsSide = found !== undefined && (found.x0 < SIDE * page.width || found.x1 > (1 - SIDE) * page.width)
  const bubble = band || !hugsSide ? undefined : found
  return {
    band,
    text,
    box,
    bubble,
    time,
    confidence,
    chars: text.length,
    ...placeOf(bubble ?? box, page.width)
  }
}

const overlapsVertically = (a: Box, b: Box) => Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0) > 0.3 * height(b)

/** Whether the centre of `inner` lies within `outer` grown by `margin`. */
const centredIn = (inner: Box, outer: Box, margin: number) => {
  const x = (inner.x0 + inner.x1) / 2
  const y = (inner.y0 + inner.y1) / 2
  return x >= outer.x0 - margin && x <= outer.x1 + margin && y >= outer.y0 - margin && y <= outer.y1 + margin
}

/** Whether `line` continues the message `group` (whose last line is `previous`). */
const continues = (group: Group, previous: Line, line: Line, lineHeight: number) => {
  if (previous.bubble !== undefined || line.bubble !== undefined) {
    // One bubble seen from two lines: its box, found from each, may differ at a rounded corner.
    return (
      previous.bubble !== undefined &&
      line.bubble !== undefined &&
      (centredIn(line.box, previous.bubble, lineHeight / 4) || centredIn(previous.box, line.bubble, lineHeight / 4))
    )
  }
  if (overlapsVertically(previous.box, line.box)) return line.kind === group.sender
  const close = line.box.y0 - previous.box.y1 <= 0.8 * lineHeight
  const aligned = Math.abs(line.box.x0 - (group.lines[0]?.box.x0 ?? line.box.x0)) <= lineHeight
  return close && aligned && (line.kind === group.sender || line.ambiguous)
}

/**
 * App chrome, by layout: what is drawn around the conversation rather than in it.
 * - `header`: the status bar and the header band (no bubble, above the first bubble, near the top);
 * - `input`: the input bar (no bubble, below the last bubble, near the bottom);
 * - `separator`: a centred line outside any side bubble (dates, times, "New messages" banners,
 *   notices) — its date or time becomes the `time` of the messages that follow;
 * - `meta`: small text outside bubbles (read receipts, "Delivered", reactions' counts) when the
 *   page has bubbles: text noticeably smaller than the bubbles' text.
 */
type Chrome = "header" | "input" | "separator" | "meta"

const HEADER_BAND = 0.15
const HEADER_ALWAYS = 0.1
const INPUT_BAND = 0.1
const INPUT_ALWAYS = 0.93
/** Outside bubbles, text this much smaller than the bubbles' text is a caption. */
const META_HEIGHT = 0.85
/**
 * Outside bubbles, text this much smaller is a caption whatever its width ("Seen"); so is a
 * word or two somewhat smaller ("Read", "Envoyé") while the messages are in bubbles.
 */
const TINY = 0.68
/** Outside bubbles, a "line" whose characters are this much wider than the bubbles' is fragments. */
const SPREAD = 3

interface BubbleText {
  readonly top: number
  readonly bottom: number
  /** Median height of the lines in bubbles. */
  readonly textHeight: number
  /** Median width of a character in bubbles (steadier than heights, which depend on the letters). */
  readonly charWidth: number
}

const charWidth = (line: Line) => (line.box.x1 - line.box.x0) / Math.max(1, line.text.length)

const chromeOf = (line: Line, page: OcrPage, bubbles: BubbleText | null) => {
  // Phones give the status bar and the header at least the top tenth of the screen, the input
  // bar and home indicator the bottom fifteenth: whatever is drawn there, in any colour.
  if (line.box.y1 <= page.height * HEADER_ALWAYS) return "header" satisfies Chrome
  if (line.box.y0 >= page.height * INPUT_ALWAYS) return "input" satisfies Chrome
  if (line.bubble !== undefined && line.kind !== "system") return null
  // A date under the header, above the first bubble, is the first separator (a "last seen at"
  // status under the name is not).
  if (line.kind === "system" && isSeparator(line.text) && line.box.y0 > page.height * STATUS_BAR) {
    return "separator" satisfies Chrome
  }
  const headerEnd = Math.min(bubbles?.top ?? page.height * 0.1, page.height * HEADER_BAND)
  if (line.box.y1 <= headerEnd + height(line.box) * 0.25) return "header" satisfies Chrome
  const inputStart = Math.max(bubbles?.bottom ?? page.height * 0.9, page.height * (1 - INPUT_BAND))
  if (line.box.y0 >= inputStart - height(line.box) * 0.25) return "input" satisfies Chrome
  if (line.kind === "system" || line.band) return "separator" satisfies Chrome
  if (
    bubbles !== null &&
    line.bubble === undefined &&
    (height(line.box) < TINY * bubbles.textHeight ||
      // Fragments read across a gap (a receipt and its time, specks), not a line of text.
      charWidth(line) > SPREAD * bubbles.charWidth ||
      (height(line.box) < META_HEIGHT * bubbles.textHeight &&
        (charWidth(line) < META_HEIGHT * bubbles.charWidth || line.text.split(/\s+/u).length <= 2)) ||
      // A word or three of narrower characters, whatever its height: on a downscaled screenshot
      // (the normalised image the pipeline reads) a receipt's box can come out as tall as a message's.
      (charWidth(line) < META_HEIGHT * bubbles.charWidth && line.text.split(/\s+/u).length <= 3))
  ) {
    return "meta" satisfies Chrome
  }
  return null
}

const PRESENCE = /\b(?:seen|last|active|online|vu|actif|ligne)\b/iu

const isSeparator = (text: string) => (TIME.test(text) || DATE_WORDS.test(text)) && !PRESENCE.test(text)

/** The match's name among the header's lines: the tallest with letters that is no time, date or status. */
const headerName = (lines: ReadonlyArray<Line>): string | null => {
  const candidates = lines.filter(
    (line) =>
      /\p{L}{2,}/u.test(line.text) &&
      !/\d/u.test(line.text) &&
      line.text.split(/\s+/u).length <= 3 &&
      /^\p{Lu}/u.test(line.text) &&
      !/[.:!?…]$/u.test(line.text)
  )
  const tallest = candidates.reduce<Line | undefined>(
    (best, line) => (best === undefined || height(line.box) > height(best.box) * 1.1 ? line : best),
    undefined
  )
  return tallest?.text ?? null
}

/** The time in digits read from a small caption ("1013", "19 36"), as H:MM. */
const clockOf = (text: string): string | null => {
  const clock = /^(\d{1,2})(\d{2})$/u.exec(text.replace(/\D/gu, ""))
  return clock === null ? null : `${clock[1]}:${clock[2]}`
}

/** Three dots read as letters: a typing indicator. */
const TYPING = /^[\s.·•°oO0eéc*-]{1,8}$/u

/** The messages read from `page`, top to bottom; no messages when nothing legible is there. */
export const layoutTranscript = (page: OcrPage): Transcript => {
  const cleaned = page.lines.map((line) => cleanLine(line, page)).filter((line): line is Line => line !== undefined)
  const typicalHeight = median(cleaned.map((line) => height(line.box)))
  const kept = cleaned
    // Specks read as text are noise.
    .filter((line) => height(line.box) >= 0.4 * typicalHeight)
    .sort((a, b) => (a.box.y0 + a.box.y1) / 2 - (b.box.y0 + b.box.y1) / 2 || a.box.x0 - b.box.x0)
  // A line whose own bubble was not found (its sample fell on a rounded corner or an edge blurred
  // by the downscale) but that lies inside the bubble another line found is in that bubble.
  const found = kept.flatMap((line) => (line.bubble === undefined ? [] : [line.bubble]))
  const lines = kept.map((line) => {
    if (line.bubble !== undefined || line.band) return line
    const bubble = found.find((candidate) => centredIn(line.box, candidate, 0))
    return bubble === undefined ? line : { ...line, bubble, ...placeOf(bubble, page.width) }
  })
  const lineHeight = Math.max(1, typicalHeight)

  const inBubbles = lines.filter(
    (line) =>
      line.bubble !== undefined &&
      line.kind !== "system" &&
      line.box.y1 > page.height * HEADER_ALWAYS &&
      line.box.y0 < page.height * INPUT_ALWAYS
  )
  const bubbles =
    inBubbles.length === 0
      ? null
      : {
          top: Math.min(...inBubbles.map((line) => line.bubble?.y0 ?? line.box.y0)),
          bottom: Math.max(...inBubbles.map((line) => line.bubble?.y1 ?? line.box.y1)),
          textHeight: median(inBubbles.map((line) => height(line.box))),
          charWidth: median(inBubbles.map(charWidth))
        }

  const header: Array<Line> = []
  const groups: Array<Group> = []
  let separatorTime: string | null = null
  for (const line of lines) {
    const chrome = chromeOf(line, page, bubbles)
    if (chrome === "header") {
      header.push(line)
      continue
    }
    if (chrome === "separator") {
      if (isSeparator(line.text)) separatorTime = line.text
      continue
    }
    if (chrome !== null) continue
    const group = groups.at(-1)
    const previous = group?.lines.at(-1)
    if (group !== undefined && previous !== undefined && continues(group, previous, line, lineHeight)) {
      const small = height(line.box) < SMALL * (bubbles?.textHeight ?? lineHeight)
      if (TIME_ONLY.test(line.text)) group.time = TIME.exec(line.text)?.[0] ?? line.text
      else if (small && /\d{3}/u.test(line.text.replace(/\D/gu, "")) && !/\p{L}{3}/u.test(line.text)) {
        group.time = clockOf(line.text) ?? group.time
      } else if (!(small && line.text.length <= 3)) group.lines.push(line)
      if (line.time !== null) group.time = line.time
      continue
    }
    groups.push({ sender: line.kind, lines: [line], time: line.time ?? separatorTime })
  }

  // The typing indicator's dots, in the last bubble, read as a few small letters.
  const last = groups.at(-1)
  const dots = last?.lines.length === 1 ? last.lines[0] : undefined
  if (
    dots !== undefined &&
    dots.text.length <= 4 &&
    !/\d/u.test(dots.text) &&
    height(dots.box) < 0.6 * (bubbles?.textHeight ?? lineHeight)
  ) {
    groups.pop()
  }
  const messages = groups
    .filter((group) => !TYPING.test(group.lines.map((line) => line.text).join(" ")))
    .map((group) => {
      const text = group.lines.map((line) => line.text).join(" ")
      const ambiguous = group.lines.every((line) => line.ambiguous)
      const score = (weightedConfidence(group.lines) / 100) * LOCAL_CONFIDENCE_CAP * (ambiguous ? 0.5 : 1)
      return { sender: group.sender, text, time: group.time, confidence: round(score), chars: text.length }
    })

  return {
    messages: messages.map(({ chars: _chars, ...message }): TranscriptMessage => message),
    matchName: headerName(header),
    app: null,
    confidence: round(weightedConfidence(messages)),
    engine: "local-ocr"
  }
}
