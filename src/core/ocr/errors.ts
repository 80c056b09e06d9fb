/** What reading a screenshot can fail with, besides the AI errors the service lets through. */
import { Schema } from "effect"

/**
 * No engine could read any text: the image is blank or holds no text (`no-text`), it cannot be
 * decoded (`unreadable-image`), the local engine failed to start or crashed (`engine`), or it
 * took longer than its limit (`timeout`).
 */
export class OcrFailed extends Schema.TaggedError<OcrFailed>()("OcrFailed", {
  reason: Schema.Literal("no-text", "unreadable-image", "engine", "timeout"),
  message: Schema.String
}) {}
