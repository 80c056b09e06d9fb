/**
 * The scanner of a streamed vision answer: every message of the `messages` array (a line, or an
 * object) comes out once, in order, as soon as its closing quote or brace has arrived, however the
 * answer is cut into pieces, whatever the messages' text holds (braces, quotes, escapes), and only
 * from the top-level `messages` array.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, Either, FastCheck as fc, Schema } from "effect"
import { answerOf } from "../../../../src/core/ai/answer-json.ts"
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

const decode = Schema.decodeUnknownSync(VisionTranscript)
// Answers as a model writes them: lines and objects mixed (`encodedBoundSchema` keeps the lines' pattern).
const answers = Arbitrary.make(Schema.encodedBoundSchema(VisionTranscript))

describe("makeMessageScanner", () => {
  it("every message, once and in order, however the answer is cut (braces, quotes and escapes in the text)", () => {
    fc.assert(
      fc.property(answers, fc.array(fc.nat(), { maxLength: 40 }), fc.boolean(), (answer, cuts, pretty) => {
        const text = JSON.stringify(answer, null, pretty ? 2 : undefined)
        expect(scanAll(cutAt(text, cuts))).toEqual(decode(answer).messages)
      }),
      { numRuns: 300 }
    )
  })

  it("a message comes out with the piece that closes it, not later", () => {
    fc.assert(
      fc.property(answers, (answer) => {
        const transcript = decode(answer)
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

  it("prose before the answer (a lone quote, brackets) counts for nothing: the messages of the object after it stream", () => {
    const text =
      'Here is the 5" screen [as asked]: ```json\n{"messages":["them: hi \\"you\\"","me: yo"],"confidence":1}\n``` Done "'
    expect(scanAll(cutAt(text, [9, 10, 40, 41]))).toEqual([
      { sender: "them", text: 'hi "you"' },
      { sender: "me", text: "yo" }
    ])
  })

  it("lines: sender, time in brackets, text with colons, brackets and quotes; a line without a sender is skipped", () => {
    const text = JSON.stringify({
      messages: [
        "system: Today 9:41 PM",
        'them: Meet at "The Spot": 9:30?',
        "me [9:43 PM]: [photo]",
        "Alex: not a sender",
        "me:",
        "them: [sticker] ok"
      ],
      confidence: 0.9
    })
    expect(scanAll(cutAt(text, [5, 20, 21, 50, 77, 78]))).toEqual([
      { sender: "system", text: "Today 9:41 PM" },
      { sender: "them", text: 'Meet at "The Spot": 9:30?' },
      { sender: "me", text: "[photo]", time: "9:43 PM" },
      { sender: "me", text: "" },
      { sender: "them", text: "[sticker] ok" }
    ])
  })

  it("strings outside the messages array (name, app, a nested array) are not messages", () => {
    const text =
      '{"matchName":"them: Alex","extra":[["me: nested"]],"messages":["them: hi"],"app":"me: x","confidence":1}'
    expect(scanAll([text])).toEqual([{ sender: "them", text: "hi" }])
  })

  it("whatever prose wraps the answer (braces, brackets, quotes, escapes, other objects), a read that is kept streamed its messages", () => {
    // Kept: the whole answer decodes (AnswerJson) and the scanner saw one messages array.
    const whole = Schema.decodeUnknownEither(answerOf(VisionTranscript))
    const unit = fc.constantFrom("{", "}", "[", "]", '"', "\\", ",", ":", "`", " ", "\n", "a", "\u{1F600}")
    const prose = fc.oneof(
      fc.string({ unit, maxLength: 30 }),
      fc.string(),
      fc.constantFrom("{}", '{"messages":["them: other"]}', '{"messages":["them: other"], broken}')
    )
    let kept = 0
    fc.assert(
      fc.property(answers, prose, prose, fc.array(fc.nat(), { maxLength: 20 }), (answer, before, after, cuts) => {
        const text = `${before}\n\`\`\`json\n${JSON.stringify(answer)}\n\`\`\`\n${after}`
        const scanner = makeMessageScanner()
        const streamed = cutAt(text, cuts).flatMap((piece) => scanner.push(piece))
        const decoded = whole(text)
        if (Either.isRight(decoded) && !scanner.ambiguous()) {
          kept++
          expect(streamed).toEqual(decoded.right.messages)
        }
      }),
      { numRuns: 500 }
    )
    // Not vacuous: harmless prose (or none) leaves the answer readable.
    expect(kept).toBeGreaterThan(0)
  })

  it("an answer cut off mid-message gives the messages before it, and nothing half-written", () => {
    const text = '{"messages":[{"sender":"them","text":"complete"},"me: done","me: half a mess'
    expect(scanAll(cutAt(text, [10, 30]))).toEqual([
      { sender: "them", text: "complete" },
      { sender: "me", text: "done" }
    ])
  })

  it("a second top-level messages array makes the answer ambiguous (JSON.parse keeps the last); a nested one does not", () => {
    const nested = makeMessageScanner()
    nested.push('{"meta":{"messages":["them: a"]},"messages":["me: b"],"x":"messages","confidence":1}')
    expect(nested.ambiguous()).toBe(false)
    const twice = makeMessageScanner()
    twice.push('{"messages":["them: a"],"mess')
    expect(twice.ambiguous()).toBe(false)
    twice.push('ages":["me: b"],"confidence":1}')
    expect(twice.ambiguous()).toBe(true)
    // A `messages` key that is not an array first: the lines come from the one array, which JSON.parse keeps.
    const nullFirst = makeMessageScanner()
    nullFirst.push('{"messages":null,"messages":["me: b"],"confidence":1}')
    expect(nullFirst.ambiguous()).toBe(false)
  })

  it("a 1 MB answer fed a character at a time is read through (the pieces read are not copied again at each piece)", async () => {
    // Held whole and indexed after each `+=`, V8 flattened the answer so far at every piece: a 1 MB
    // answer in 1-character deltas copied ~500 GB and never came back within the test's guard (the
    // loop yields now and then so that the guard can end it).
    const lines = Array.from({ length: 40_000 }, (_, index) => `them: line ${index} {"x":[1]} \\ é`)
    const text = `Here it is:\n\`\`\`json\n${JSON.stringify({ messages: lines, confidence: 1 })}\n\`\`\``
    expect(text.length).toBeGreaterThan(1_000_000)
    const scanner = makeMessageScanner()
    let read = 0
    for (let at = 0; at < text.length; at++) {
      read += scanner.push(text.charAt(at)).length
      if (at % 10_000 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    expect(read).toBe(lines.length)
    expect(scanner.ambiguous()).toBe(false)
  })
})
