/**
 * A structured answer's text as its JSON value: whole, or the one object a model wrapped in a code
 * fence or in prose; several objects stay invalid (no guess), as does an answer with none.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { AnswerJson, answerOf, topLevelObjects } from "../../../../src/core/ai/answer-json.ts"

const read = Schema.decodeUnknownEither(AnswerJson)
const problemOf = (text: string) => Either.match(read(text), { onLeft: (error) => error.message, onRight: () => "" })

const VALUE = { messages: ["them: hi {there}", 'me: "quoted" ```'], confidence: 0.9 }
const JSON_TEXT = JSON.stringify(VALUE)

describe("AnswerJson", () => {
  it("JSON that parses whole is taken as it is (an array, a string, an object)", () => {
    for (const value of [VALUE, [1, { a: 2 }], "text", null, 3]) {
      expect(read(JSON.stringify(value))).toEqual(Either.right(value))
    }
    expect(read(`  \n${JSON.stringify(VALUE, null, 2)}\n`)).toEqual(Either.right(VALUE))
  })

  it("the one object in a code fence or in prose (quotes, braces and brackets around it) is the answer", () => {
    const forms = [
      `\`\`\`json\n${JSON_TEXT}\n\`\`\``,
      `\`\`\`\n${JSON_TEXT}\n\`\`\`\n`,
      `Here is the transcript "with quotes" {and braces} [and brackets]:\n${JSON_TEXT}`,
      `${JSON_TEXT}\n\nI hope this helps! Let me know if "anything" is off.`,
      `Sure: \`\`\`json\n${JSON.stringify(VALUE, null, 2)}\n\`\`\` That's it {`
    ]
    for (const text of forms) expect(read(text), text).toEqual(Either.right(VALUE))
  })

  it("several objects that parse are ambiguous: invalid, with a message that says so", () => {
    const two = `\`\`\`json\n${JSON_TEXT}\n\`\`\`\nOr rather:\n\`\`\`json\n{"messages":[],"confidence":1}\n\`\`\``
    expect(problemOf(two)).toContain("2 JSON objects in the answer")
    expect(problemOf(`${JSON_TEXT} ${JSON_TEXT}`)).toContain("2 JSON objects in the answer")
  })

  it("no object that parses: invalid as before (JSON.parse's own message)", () => {
    for (const text of ["not json", '```json\n{"messages": [\n```', "{broken} and {also: broken}", ""]) {
      expect(Either.isLeft(read(text)), text).toBe(true)
    }
    expect(problemOf("Sorry, I can't read this image.")).toMatch(/JSON/)
  })

  it("any object, fenced or between lines of prose, reads as itself", () => {
    // Without a brace or a bracket, which could open an object or wrap the answer in an array.
    const prose = fc.string().filter((text) => !/[{[]/.test(text))
    fc.assert(
      fc.property(fc.object(), prose, prose, fc.boolean(), (value, before, after, fenced) => {
        const json = JSON.stringify(value)
        const text = fenced ? `${before}\n\`\`\`json\n${json}\n\`\`\`\n${after}` : `${before}\n${json}\n${after}`
        expect(read(text)).toEqual(Either.right(JSON.parse(json)))
      }),
      { numRuns: 300 }
    )
  })

  it("answerOf(schema): the schema decodes the extracted value", () => {
    const decode = Schema.decodeUnknownEither(answerOf(Schema.Struct({ opener: Schema.String })))
    expect(decode('```json\n{"opener":"Hi"}\n```')).toEqual(Either.right({ opener: "Hi" }))
    expect(Either.isLeft(decode('```json\n{"opener":1}\n```'))).toBe(true)
  })
})

describe("topLevelObjects", () => {
  it("spans that begin outside any object; braces and quotes inside strings are text", () => {
    expect(topLevelObjects('a {"x":"}{\\""} b {[}] {"y":{"z":[1]}} {open')).toEqual([
      '{"x":"}{\\""}',
      "{[}]",
      '{"y":{"z":[1]}}'
    ])
  })
})
