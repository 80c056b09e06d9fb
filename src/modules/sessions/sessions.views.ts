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

const isTone = Schema.is(Tone)
const isSender = Schema.is(SessionSender)

export const toneOf = (value: string | null | undefined): Tone => (isTone(value) ? value : "playful")

export const toMessage = (row: {
  readonly sender: string
  readonly text: string
  readonly time: string | null
  readonly confidence: number
}): SessionMessage => ({
  sender: isSender(row.sender) ? row.sender : "system",
  text: row.text,
  time: row.time,
  confidence: row.confidence
})

export const toSuggestion = (row: {
  readonly id: string
  readonly batch: number
  readonly position: number
  readonly text: string
  readonly tone: string
  readonly feedback: string | null
  readonly dislikeReason: string | null
}): SessionSuggestion => ({
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
