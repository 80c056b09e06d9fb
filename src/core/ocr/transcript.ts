/**
 * What reading a chat screenshot produces: the messages top to bottom, each attributed to a
 * speaker, with the match's name and the chat app when visible, confidences, and the engine
 * that read it. `VisionTranscript` is what a vision model is asked for (its JSON Schema is
 * sent to the provider), in a compact form; `Transcript` is the full form with the engine, which
 * the service sets itself.
 */
import { JSONSchema, ParseResult, Schema } from "effect"
import { MAX_MESSAGE_CHARS, MAX_SCREENSHOT_MESSAGES } from "../../domain/transcript-limits.ts"
import { ProviderId } from "../ai/provider.ts"

export const Sender = Schema.Literal("me", "them", "system").annotations({
  description:
    '"me": the screenshot owner\'s messages (right-aligned / coloured bubbles); "them": the other person\'s (left-aligned); "system": centred dates, times and app notices'
})
export type Sender = typeof Sender.Type

export const Confidence = Schema.Number.pipe(Schema.between(0, 1)).annotations({
  description: "0 (guess) to 1 (certain)"
})

export const TranscriptMessage = Schema.Struct({
  sender: Sender,
  text: Schema.String.pipe(Schema.maxLength(MAX_MESSAGE_CHARS)).annotations({
    description: "The message exactly as written (no corrections)"
  }),
  time: Schema.NullOr(Schema.String).annotations({
    description: "The time shown with the message, as written, or null"
  }),
  confidence: Confidence
})
export type TranscriptMessage = typeof TranscriptMessage.Type

const transcriptFields = {
  messages: Schema.Array(TranscriptMessage)
    .pipe(Schema.maxItems(MAX_SCREENSHOT_MESSAGES))
    .annotations({ description: "Every message, in order from top to bottom" }),
  matchName: Schema.NullOr(Schema.String).annotations({
    description: "The other person's display name as shown in the chat header, or null"
  }),
  app: Schema.NullOr(Schema.String).annotations({
    description: "The chat app if recognisable (e.g. iMessage, WhatsApp, Tinder, Hinge, Bumble), or null"
  }),
  confidence: Confidence
}

/**
 * The answer asked of a vision model: compact, because every token it writes is time before the
 * transcript is on screen. Each message is one line, `sender: text`, with the time in brackets when
 * one is printed with it (`me [9:41 PM]: On my way`); bench:latency's nine-message chat is 115
 * tokens (o200k) this way against 151 as objects with `sender` and `text` keys. A message's own
 * confidence, only for the few the model doubts, goes in `unsure`; name and app only when shown.
 */
const VISION_LINE = /^(me|them|system)(?: \[([^\]\n]*)\])?:(?: ([\s\S]*))?$/
/**
 * What is read as a line: the pattern the model is sent, and what a model writes near it ("Them:",
 * "me : …", "me:…"), which would otherwise cost a corrective retry for nothing.
 */
const READ_LINE = /^\s*(me|them|system)\s*(?:\[([^\]\n]*)\]\s*)?:(?: ?([\s\S]*))?$/i

/** A message as the vision answer gives it, line or object, decoded. */
export const VisionMessage = Schema.Struct({
  sender: Sender,
  text: Schema.String.annotations({ description: "The message exactly as written (no corrections)" }),
  time: Schema.optionalWith(Schema.String, { nullable: true }),
  confidence: Schema.optional(Confidence)
})
export type VisionMessage = typeof VisionMessage.Type

const isSender = Schema.is(Sender)

const LINE_DESCRIPTION =
  'One message: its sender ("me", "them" or "system"), a colon, a space and the text as written; the time in brackets after the sender only when one is printed with the message, e.g. "me [9:41 PM]: On my way"'

/** `sender: text` or `sender [time]: text`, read as a message. */
export const VisionLine = Schema.transformOrFail(
  Schema.String.pipe(Schema.pattern(READ_LINE)).annotations({ description: LINE_DESCRIPTION }),
  Schema.typeSchema(VisionMessage),
  {
    strict: true,
    decode: (line, _, ast) => {
      const match = READ_LINE.exec(line)
      const sender = match?.[1]?.toLowerCase()
      if (match === null || sender === undefined || !isSender(sender)) {
        return ParseResult.fail(new ParseResult.Type(ast, line, "Expected sender: text"))
      }
      const time = match[2]
      return ParseResult.succeed({ sender, text: match[3] ?? "", ...(time === undefined ? {} : { time }) })
    },
    encode: (message) =>
      ParseResult.succeed(`${message.sender}${message.time == null ? "" : ` [${message.time}]`}: ${message.text}`)
  }
)

/**
 * The model is asked for lines; an object (`{ "sender", "text", "time"?, "confidence"? }`, the
 * form of the earlier prompts) is read too rather than spending a corrective retry on it.
 */
const VisionMessageAnswer = Schema.Union(VisionLine, VisionMessage).annotations({
  jsonSchema: { type: "string", pattern: VISION_LINE.source, description: LINE_DESCRIPTION }
})

const Doubt = Schema.Struct({
  message: Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations({
    description: "Its position in messages, from 0"
  }),
  confidence: Confidence
})
const isDoubt = Schema.is(Doubt)
const Doubts = Schema.Array(Doubt).annotations({
  description: "Only messages you are less sure of than the rest, each with its own confidence; left out otherwise"
})
// The model is sent the list as asked (the JSON Schema of `Doubts`, without its `$schema`).
const { $schema: _, ...doubtsJsonSchema } = JSONSchema.make(Doubts)

/**
 * `unsure` is advisory: an entry that is not a doubt (a confidence of 7, a position of -1 or 1.5, a
 * string) is dropped and the others kept, rather than the whole answer sent back for a corrective
 * retry; anything but a list is no doubt at all. (A position past the last message is ignored by
 * `transcriptOfVision`.)
 */
const Unsure = Schema.transform(
  Schema.Unknown.annotations({ jsonSchema: doubtsJsonSchema }),
  Schema.typeSchema(Doubts),
  {
    strict: true,
    decode: (entries) => (Array.isArray(entries) ? entries.filter(isDoubt) : []),
    encode: (doubts) => doubts
  }
)

export const VisionTranscript = Schema.Struct({
  messages: Schema.Array(VisionMessageAnswer).annotations({
    description: "Every message, in order from top to bottom"
  }),
  unsure: Schema.optional(Unsure),
  matchName: Schema.optionalWith(Schema.String, { nullable: true }).annotations({
    description: "The other person's display name as shown in the chat header; left out when not shown"
  }),
  app: Schema.optionalWith(Schema.String, { nullable: true }).annotations({
    description: "The chat app if recognisable (e.g. iMessage, WhatsApp, Tinder, Hinge, Bumble); left out otherwise"
  }),
  confidence: Confidence
})
export type VisionTranscript = typeof VisionTranscript.Type

/** `vision:<provider id>` (e.g. `vision:gpt-4o`) or `local-ocr`. */
export const OcrEngine = Schema.Union(Schema.TemplateLiteral("vision:", ProviderId), Schema.Literal("local-ocr"))
export type OcrEngine = typeof OcrEngine.Type

export const Transcript = Schema.Struct({ ...transcriptFields, engine: OcrEngine })
export type Transcript = typeof Transcript.Type

/**
 * A vision answer as a `Transcript`: a message's confidence is its own (from `unsure`, or an
 * object's) or the transcript's; no time is null.
 */
export const transcriptOfVision = (answer: VisionTranscript, engine: OcrEngine): Transcript => {
  const unsure = new Map((answer.unsure ?? []).map((doubt) => [doubt.message, doubt.confidence]))
  return {
    messages: answer.messages.map((message, position) => ({
      sender: message.sender,
      text: message.text,
      time: message.time ?? null,
      confidence: unsure.get(position) ?? message.confidence ?? answer.confidence
    })),
    matchName: answer.matchName ?? null,
    app: answer.app ?? null,
    confidence: answer.confidence,
    engine
  }
}
