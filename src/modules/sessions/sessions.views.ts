/** Rows to wire views: shared by the api, the pipeline and the suggester. */
import { Option, Schema } from "effect"
import {
  type SessionMessage,
  SessionSender,
  type SessionStreamItem,
  type SessionSuggestion,
  SessionTimings
} from "../../domain/sessions.ts"
import { Tone } from "../../domain/tones.ts"
import type { SavedSuggestion } from "./sessions.repo.ts"

const isTone = Schema.is(Tone)
const isSender = Schema.is(SessionSender)

export const toneOf = (value: string | null | undefined): Tone => (isTone(value) ? value : "playful")

export const toMessage = (row: {
  readonly position: number
  readonly sender: string
  readonly text: string
  readonly time: string | null
  readonly confidence: number
}): SessionMessage => ({
  position: row.position,
  sender: isSender(row.sender) ? row.sender : "system",
  text: row.text,
  time: row.time,
  confidence: row.confidence
})

export const toSuggestion = (row: SavedSuggestion): SessionSuggestion => ({
  id: row.id,
  batch: row.batch,
  position: row.position,
  text: row.text,
  tone: toneOf(row.tone),
  feedback: row.feedback === "liked" || row.feedback === "disliked" ? row.feedback : null,
  dislikeReason: row.feedback === "disliked" ? row.dislikeReason : null
})

/** A followed session's item as SSE and the WebSocket send it: `event` is `snapshot` or the tag in lower case. */
export const wireEventOf = (item: SessionStreamItem): { seq: number; event: string; data: unknown } => {
  if (item._tag === "Snapshot") return { seq: item.seq, event: "snapshot", data: item.state }
  const { _tag, ...data } = item.event
  return { seq: item.seq, event: _tag.toLowerCase(), data }
}

/** The row's `timings` JSON as the view's; anything unreadable is no timing at all. */
export const timingsOf = (value: unknown): SessionTimings =>
  Option.getOrElse(Schema.decodeUnknownOption(SessionTimings)(value), () => ({}))

const FAILURE_MESSAGES: Partial<Record<string, string>> = {
  OCR_FAILED: "No chat could be read from the screenshots",
  AI_UNAVAILABLE: "No AI provider could answer; try again shortly",
  QUOTA_EXCEEDED: "Today's AI budget for this account is used up",
  SAFETY_BLOCKED: "This conversation involves someone under 18: Wingmate does not help with that",
  AI_EMPTY_RESULT: "The AI wrote no reply that could be kept; try again"
}

/** The message of a failed session's `Failed` event, by its code. */
export const failureMessage = (code: string) => FAILURE_MESSAGES[code] ?? "The session could not be completed"
