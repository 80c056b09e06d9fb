/**
 * Overlap of consecutive screenshots' transcripts by alignment: OCR noise in the repeated
 * messages, one spurious or missing line on either side, and what must not count as overlap.
 */
import { describe, expect, it } from "@effect/vitest"
import { overlapLength, textSimilarity } from "../../../../src/core/ocr/overlap.ts"
import { mergeTranscripts } from "../../../../src/modules/sessions/merge.ts"

const them = (text: string) => ({ sender: "them", text })
const me = (text: string) => ({ sender: "me", text })

const first = [them("Hey! How was your weekend?"), me("Pretty good, I went hiking"), them("Which trail did you take?")]

describe("overlapLength", () => {
  it("the same messages read slightly differently twice still overlap", () => {
    expect(textSimilarity("Which trail did you take?", "Wh1ch trail did you take")).toBeGreaterThan(0.8)
    const next = [me("Pretty good, | went hiking"), them("Which trail did you take"), me("The one past the lighthouse")]
    expect(overlapLength(first, next)).toBe(2)
  })

  it("a spurious first line (the header's name read as a message from me) goes with the overlap", () => {
    const next = [me("Alex"), me("Pretty good, I went hiking"), them("Which trail did you take?"), me("The old one")]
    expect(overlapLength(first, next)).toBe(3)
    const merged = mergeTranscripts([first, next])
    expect(merged.map((message) => message.text)).toEqual([
      "Hey! How was your weekend?",
      "Pretty good, I went hiking",
      "Which trail did you take?",
      "The old one"
    ])
  })

  it("a line missing from either reading: one gap is tolerated between matches", () => {
    // The second screenshot lost "Pretty good" (cut at the top edge, not read).
    expect(
      overlapLength(first, [them("Hey! How was your weekend?"), them("Which trail did you take?"), me("New")])
    ).toBe(2)
    // The first screenshot read a receipt as a message at its end.
    expect(
      overlapLength([...first, me("Delivered")], [me("Pretty good, I went hiking"), them("Which trail did you take?")])
    ).toBe(2)
  })

  it("no overlap: different messages, other senders, a single match beside a gap, repeats inside one screenshot", () => {
    expect(overlapLength(first, [me("Something else entirely"), them("And more")])).toBe(0)
    expect(overlapLength([me("ok")], [them("ok")])).toBe(0)
    // One match next to a line without counterpart is too little to trust.
    expect(overlapLength(first, [me("Spurious"), me("Totally new"), them("Which trail did you take?")])).toBe(0)
    expect(mergeTranscripts([[them("lol"), me("lol")], [them("new")]])).toHaveLength(3)
  })
})
