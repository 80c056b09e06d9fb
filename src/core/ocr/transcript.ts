/**
 * What reading a chat screenshot produces: the messages top to bottom, each attributed to a
 * speaker, with the match's name and the chat app when visible, confidences, and the engine
 * that read it. `VisionTranscript` is what a vision model is asked for (its JSON Schema is
 * sent to the provider); `Transcript` adds the engine, which the service sets itself.
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

/** The answer asked of a vision model. */
export const VisionTranscript = Schema.Struct(transcriptFields)
export type VisionTranscript = typeof VisionTranscript.Type

/** `vision:<provider id>` (e.g. `vision:gpt-4o`) or `local-ocr`. */
export const OcrEngine = Schema.Union(Schema.TemplateLiteral("vision:", ProviderId), Schema.Literal("local-ocr"))
export type OcrEngine = typeof OcrEngine.Type

export const Transcript = Schema.Struct({ ...transcriptFields, engine: OcrEngine })
export type Transcript = typeof Transcript.Type
