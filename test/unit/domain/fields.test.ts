/** The boundary's text schemas: well-formed Unicode, no NUL or control characters, trimmed, capped. */
import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { LongText, PlainString, Text, Token } from "../../../src/domain/fields.ts"

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
