/** The boundary's text schemas: well-formed Unicode, no NUL or control characters, trimmed, capped. */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { LongText, PlainString, storable, storableText, Text, Token } from "../../../src/domain/fields.ts"

const decode = <A, I>(schema: Schema.Schema<A, I>, input: unknown) => Schema.decodeUnknownEither(schema)(input)

describe("Text", () => {
  it("trims, and refuses empty or over-long text", () => {
    expect(decode(Text(5), "  Ada  ")).toEqual(Either.right("Ada"))
    expect(Either.isLeft(decode(Text(5), "   "))).toBe(true)
    expect(Either.isLeft(decode(Text(5), "Adaaaa"))).toBe(true)
    expect(decode(LongText(5, { allowEmpty: true }), "  ")).toEqual(Either.right(""))
  })

  it("refuses NUL, other controls and lone surrogates; keeps emoji and RTL marks", () => {
    // C1 controls (U+0080–U+009F, NEL among them) and the Unicode line and paragraph separators too.
    for (const bad of [
      "a\u0000b",
      "a\u0007",
      "a\u007f",
      "x\ud800",
      "\udc00y",
      "a\nb",
      "a\u0085b",
      "a\u009f",
      "a\u2028b",
      "a\u2029"
    ]) {
      expect(Either.isLeft(decode(Text(50), bad)), JSON.stringify(bad)).toBe(true)
    }
    for (const good of ["😀👍🏽", "\u202eevil\u202c", "Zoë", "e\u0301"]) {
      expect(decode(Text(50), good)).toEqual(Either.right(good))
    }
  })

  it("multi-line text keeps \\t \\n \\r, nothing else below U+0020", () => {
    expect(decode(LongText(50), "line 1\r\n\tline 2")).toEqual(Either.right("line 1\r\n\tline 2"))
    expect(Either.isLeft(decode(LongText(50), "a\u0000"))).toBe(true)
    expect(Either.isLeft(decode(PlainString({ multiline: true }), "\u000b"))).toBe(true)
    expect(Either.isLeft(decode(LongText(50), "a\u0085b"))).toBe(true)
    // The Unicode separators are line breaks: in multi-line text they are as welcome as \n.
    expect(decode(LongText(50), "a\u2028b\u2029c")).toEqual(Either.right("a\u2028b\u2029c"))
  })

  it("an over-long value is reported without being quoted", () => {
    const result = decode(Text(10), "x".repeat(100_000))
    expect(Either.isLeft(result) && result.left.message).toMatch(/at most 10 characters, got 100000/)
    expect(Either.isLeft(result) && result.left.message.length).toBeLessThan(1_000)
  })
})

describe("Token", () => {
  it("is printable ASCII only", () => {
    expect(decode(Token(10), "abc.DEF-1")).toEqual(Either.right("abc.DEF-1"))
    for (const bad of ["", "a b", "a\u0000", "é", "x\ud800"]) {
      expect(Either.isLeft(decode(Token(10), bad)), JSON.stringify(bad)).toBe(true)
    }
  })
})

describe("storableText", () => {
  const LONE_SURROGATE = /\p{Cs}/u
  const boundaries = (s: string) =>
    new Set([...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(s)].map(({ index }) => index))

  it("cuts between graphemes: a flag, a family, a skin tone, an accent are kept whole or left out", () => {
    const family = "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}" // 8 code units
    expect(storableText(`ab${family}`, 9)).toBe("ab")
    expect(storableText(`ab${family}`, 10)).toBe(`ab${family}`)
    expect(storableText("ok \u{1F1EB}\u{1F1F7}", 5)).toBe("ok")
    expect(storableText("a\u{1F44D}\u{1F3FD}", 4)).toBe("a")
    expect(storableText("a\u{1F600}", 2)).toBe("a")
    expect(storableText("Zoe\u0301!", 3)).toBe("Zo")
    expect(storableText("x".repeat(10), 4)).toBe("xxxx")
    // A first grapheme longer than the cap is cut between code points, never inside a pair.
    expect(storableText(`\u{1F600}${"\u0301".repeat(10)}`, 1)).toBe("")
    expect(storableText(`e${"\u0301".repeat(10)}`, 4)).toBe("e\u0301\u0301\u0301")
  })

  it("for any text and cap: a prefix of the storable text, at most the cap long, no lone surrogate", () => {
    const text = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 30 }),
      fc.string({ unit: "binary", maxLength: 30 }),
      fc
        .array(
          fc.constantFrom(
            "\u{1F1EB}\u{1F1F7}",
            "\u{1F468}\u200D\u{1F469}\u200D\u{1F467}",
            "e\u0301",
            "a",
            " ",
            "\ud800",
            "\u0000"
          ),
          {
            maxLength: 20
          }
        )
        .map((parts) => parts.join(""))
    )
    fc.assert(
      fc.property(text, fc.nat(40), fc.boolean(), (s, max, multiline) => {
        const whole = storable(s, { multiline })
        const cut = storableText(s, max, { multiline })
        expect(whole.startsWith(cut)).toBe(true)
        expect(cut.length).toBeLessThanOrEqual(max)
        expect(LONE_SURROGATE.test(cut)).toBe(false)
        expect(cut.trim()).toBe(cut)
        if (whole.length <= max) expect(cut).toBe(whole)
        // Between graphemes, unless the first alone is longer than the cap.
        const [first] = new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(whole)
        if (first !== undefined && first.segment.length <= max)
          expect(boundaries(whole).has(cut.length) || cut.length === whole.length).toBe(true)
      }),
      { numRuns: 500 }
    )
  })

  it("a 100 KB text of emoji is cut to whole emoji", () => {
    expect(storableText("\u{1F600}".repeat(50_000), 2_001)).toHaveLength(2_000)
  })
})
