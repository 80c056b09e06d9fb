/**
 * The scanner of a streamed vision answer: every message of the `messages` array comes out once, in
 * order, as soon as its closing brace has arrived, however the answer is cut into pieces, whatever
 * the messages' text holds (braces, quotes, escapes), and only from the top-level `messages` array.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, FastCheck as fc, Schema } from "effect"
import { makeMessageScanner } from "../../../../src/core/ocr/transcript-stream.ts"
import { type VisionMessage, VisionTranscript } from "../../../../src/core/ocr/transcript.ts"

/** `text` cut at `cuts` (positions, any order, repeats allowed). */
const cutAt = (text: string, cuts: ReadonlyArray<number>): ReadonlyArray<string> => {
  const points = [...new Set(cuts.map((cut) => cut % (text.length + 1)))].sort((a, b) => a - b)
  const pieces: Array<string> = []
  let from = 0
  for (const point of points) {
    pieces.push(text.slice(from, point))
    from = point
  }
  pieces.push(text.slice(from))
  return pieces
}

const scanAll = (pieces: ReadonlyArray<string>): ReadonlyArray<VisionMessage> => {
  const scanner = makeMessageScanner()
  return pieces.flatMap((piece) => scanner.push(piece))
}

const encode = Schema.encodeSync(VisionTranscript)
const transcripts = Arbitrary.make(VisionTranscript)

describe("makeMessageScanner", () => {
  it("every message, once and in order, however the answer is cut (braces, quotes and escapes in the text)", () => {
    fc.assert(
      fc.property(transcripts, fc.array(fc.nat(), { maxLength: 40 }), fc.boolean(), (transcript, cuts, pretty) => {
        const answer = encode(transcript)
        const text = JSON.stringify(answer, null, pretty ? 2 : undefined)
        expect(scanAll(cutAt(text, cuts))).toEqual(transcript.messages)
      }),
      { numRuns: 300 }
    )
  })

  it("a message comes out with the piece that closes it, not later", () => {
    fc.assert(
      fc.property(transcripts, (transcript) => {
        const answer = encode(transcript)
        const elements = answer.messages.map((message) => JSON.stringify(message))
        // Messages first, compact: the answer up to the end of message i is this prefix, exactly.
        const text = JSON.stringify({ messages: answer.messages, confidence: answer.confidence })
        const scanner = makeMessageScanner()
        let fed = 0
        elements.forEach((_, index) => {
          const end = '{"messages":['.length + elements.slice(0, index + 1).join(",").length
          const out = scanner.push(text.slice(fed, end))
          fed = end
          expect(out).toEqual([transcript.messages[index]])
        })
        expect(scanner.push(text.slice(fed))).toEqual([])
      }),
      { numRuns: 200 }
    )
  })

  it("only the top-level messages array: a value or a nested key spelled `messages` is not it", () => {
    const text =
      '{"app":"messages","matchName":"[{\\"messages\\":[{","extra":{"messages":[{"sender":"me","text":"nested"}]},' +
      '"messages":[{"sender":"them","text":"}{ real ] one"},{"sender":"me","text":"two","time":"9:41"}],"confidence":0.9}'
    expect(scanAll(cutAt(text, [3, 17, 40, 41, 90, 120]))).toEqual([
      { sender: "them", text: "}{ real ] one" },
      { sender: "me", text: "two", time: "9:41" }
    ])
  })

  it("an answer wrapped in a code fence still streams; an element that is not a message is skipped", () => {
    const text =
      '```json\n{"messages":[{"sender":"them","text":"hi"},{"sender":"robot","text":"x"},{"sender":"me","text":"yo"}],"confidence":1}\n```'
    expect(scanAll([text])).toEqual([
      { sender: "them", text: "hi" },
      { sender: "me", text: "yo" }
    ])
  })

  it("an answer cut off mid-message gives the messages before it, and nothing half-written", () => {
    const text = '{"messages":[{"sender":"them","text":"complete"},{"sender":"me","text":"half a mess'
    expect(scanAll(cutAt(text, [10, 30]))).toEqual([{ sender: "them", text: "complete" }])
  })
})
