import { describe, expect, it } from "vitest"
import { cleanLine } from "../../../../src/modules/openers/safety.ts"

describe("cleanLine", () => {
  it.each([
    ["1. Coffee or tea?", "Coffee or tea?"],
    ["2) Coffee or tea?", "Coffee or tea?"],
    ["10. Coffee or tea?", "Coffee or tea?"],
    ["- Coffee or tea?", "Coffee or tea?"],
    ["* Coffee or tea?", "Coffee or tea?"],
    ["• Coffee or tea?", "Coffee or tea?"],
    ['"Coffee or tea?"', "Coffee or tea?"],
    ["“Coffee or tea?”", "Coffee or tea?"],
    ["'Coffee or tea?'", "Coffee or tea?"],
    ['1. "Coffee or tea?"', "Coffee or tea?"],
    ['-   "Coffee or tea?"  ', "Coffee or tea?"],
    ["  Coffee or tea?\r", "Coffee or tea?"],
    ["'It's a date?'", "It's a date?"]
  ])("strips the numbering, bullet or quotes the model added: %j", (line, clean) => {
    expect(cleanLine(line)).toBe(clean)
  })

  it.each([
    "1.5 miles from me and you climb too?",
    "-5 degrees and you're still running?",
    "123. That's my lucky number, what's yours?",
    "2)that without a space stays",
    'Is your dog really called "Waffles"?',
    "Tea or coffee, no wrong answers?"
  ])("leaves an ordinary line as it is: %j", (line) => {
    expect(cleanLine(line)).toBe(line)
  })

  it.each([
    ['Best line from "Dune"', 'Best line from "Dune"'],
    ['"Dune" or "Arrival"?', '"Dune" or "Arrival"?'],
    ["'90s music or today's?", "'90s music or today's?"],
    ['1. Team "Barbie" or team "Oppenheimer"', 'Team "Barbie" or team "Oppenheimer"']
  ])("keeps quotes that belong to the text, never leaving one unbalanced: %j", (line, clean) => {
    expect(cleanLine(line)).toBe(clean)
  })

  it.each(["", "   ", "1. ", "- ", "1.", "•", '""', "“”", '"', "''"])(
    "a line with nothing left is empty: %j",
    (line) => {
      expect(cleanLine(line)).toBe("")
    }
  )
})
