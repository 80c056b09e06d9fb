import { describe, expect, it } from "vitest"
import { impliesMinor, normalizeOpener, outputAllowed } from "../../../../src/modules/openers/safety.ts"

describe("impliesMinor", () => {
  it.each([
    "I'm 16 and love skating",
    "16 yo, here for friends",
    "age: 15",
    "17 years old, bored",
    "high school junior, soccer",
    "freshman in high school",
    "in 10th grade",
    "not 18 yet lol",
    "teen who loves anime"
  ])("refuses %j", (bio) => {
    expect(impliesMinor([bio])).toBe(true)
  })

  it.each([
    "28, product designer, runs 10k on Sundays",
    "I'm 5 minutes from the beach",
    "Looking for someone 25-35",
    "High school teacher by day, DJ by night",
    "Ran 5 miles this morning",
    "I'm 30"
  ])("accepts %j", (bio) => {
    expect(impliesMinor([bio])).toBe(false)
  })

  it("looks at every field", () => {
    expect(impliesMinor([null, "Sam", undefined, "likes chess, 14 y/o"])).toBe(true)
  })
})

describe("outputAllowed", () => {
  it("refuses explicit and harassing text under every policy", () => {
    expect(outputAllowed("Send me nudes", "standard")).toBe(false)
    expect(outputAllowed("You look fat in that photo", "standard")).toBe(false)
    expect(outputAllowed("Where do you live? I want to visit", "standard")).toBe(false)
  })

  it("lets suggestive text through the standard policy but not the strict one", () => {
    const text = "That smile is seriously sexy. Coffee this week?"
    expect(outputAllowed(text, "standard")).toBe(true)
    expect(outputAllowed(text, "strict")).toBe(false)
  })

  it("lets an ordinary opener through", () => {
    expect(outputAllowed("Your dog looks like he has opinions about pizza. Does he?", "strict")).toBe(true)
  })
})

describe("normalizeOpener", () => {
  it("ignores case, spacing and punctuation", () => {
    expect(normalizeOpener("Hey,  what's up?!")).toBe(normalizeOpener("hey what s up"))
  })
})
