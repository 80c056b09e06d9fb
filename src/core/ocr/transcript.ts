/**
 * What reading a chat screenshot produces: the messages top to bottom, each attributed to a
 * speaker, with the match's name and the chat app when visible, confidences, and the engine
 * that read it. `VisionTranscript` is what a vision model is asked for (its JSON Schema is
 * sent to the provider), in a compact form; `Transcript` is the full form with the engine, which
 * the service sets itself.
 */
import { Schema } from "effect"
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
  text: Schema.String.annotations({ description: "The message exactly as written (no corrections)" }),
  time: Schema.NullOr(Schema.String).annotations({
    description: "The time shown with the message, as written, or null"
  }),
  confidence: Confidence
})
export type TranscriptMessage = typeof TranscriptMessage.Type

const transcriptFields = {
  messages: Schema.Array(TranscriptMessage).annotations({ description: "Every message, in order from top to bottom" }),
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
 * transcript is on screen (bench:latency's ten-message chat: 149 tokens instead of 217). Only what is there:
 * `time` when one is printed, a message's own `confidence` only when it is below the others, name
 * and app when shown (null, as an older answer writes them, reads as absent).
 */
export const VisionMessage = Schema.Struct({
  sender: Sender,
  text: Schema.String.annotations({ description: "The message exactly as written (no corrections)" }),
  time: Schema.optionalWith(Schema.String, { nullable: true }).annotations({
    description: "The time printed with the message, as written; left out when none is shown"
  }),
  confidence: Schema.optional(Confidence).annotations({
    description: "Only for a message you are unsure of: its own confidence, below the transcript's"
  })
})
export type VisionMessage = typeof VisionMessage.Type

export const VisionTranscript = Schema.Struct({
  messages: Schema.Array(VisionMessage).annotations({ description: "Every message, in order from top to bottom" }),
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

/** A vision answer as a `Transcript`: a message without a confidence of its own has the transcript's, no time is null. */
export const transcriptOfVision = (answer: VisionTranscript, engine: OcrEngine): Transcript => ({
  messages: answer.messages.map((message) => ({
    sender: message.sender,
    text: message.text,
    time: message.time ?? null,
    confidence: message.confidence ?? answer.confidence
  })),
  matchName: answer.matchName ?? null,
  app: answer.app ?? null,
  confidence: answer.confidence,
  engine
})
