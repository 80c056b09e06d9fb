/** The JSON limits scan: nesting and item counts on raw text, strings and escapes skipped. */
import { describe, expect, it } from "@effect/vitest"
import { fc, test } from "@fast-check/vitest"
import { jsonLimitExceeded, MAX_JSON_DEPTH, MAX_JSON_ITEMS } from "../../../../src/core/http/json-limits.ts"

const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

describe("jsonLimitExceeded", () => {
  it("accepts nesting up to the limit and refuses one level more", () => {
    expect(jsonLimitExceeded(nested(MAX_JSON_DEPTH))).toBeUndefined()
    expect(jsonLimitExceeded(nested(MAX_JSON_DEPTH + 1))).toBe("JSON nested deeper than 64 levels")
    expect(jsonLimitExceeded(`{"a":${'{"b":'.repeat(70)}1${"}".repeat(70)}}`)).toBe("JSON nested deeper than 64 levels")
  })

  it("does not count brackets, commas or escaped quotes inside strings", () => {
    expect(jsonLimitExceeded(JSON.stringify({ a: "[".repeat(1_000), b: ",".repeat(10_000) }))).toBeUndefined()
    expect(jsonLimitExceeded(JSON.stringify({ a: `\\"${"[".repeat(100)}` }))).toBeUndefined()
  })

  it("refuses more items than the limit, in one array or across the document", () => {
    expect(jsonLimitExceeded(JSON.stringify(Array.from({ length: MAX_JSON_ITEMS }, () => 0)))).toBeUndefined()
    expect(jsonLimitExceeded(JSON.stringify(Array.from({ length: MAX_JSON_ITEMS + 1 }, () => 0)))).toMatch(/items/)
    const spread = Array.from({ length: 100 }, () => Array.from({ length: 60 }, () => 0))
    expect(jsonLimitExceeded(JSON.stringify(spread))).toMatch(/items/)
  })

  test.prop([fc.jsonValue({ maxDepth: 20 })], { numRuns: 200 })("agrees with the real depth of any JSON", (value) => {
    const depthOf = (v: unknown): number =>
      Array.isArray(v)
        ? 1 + Math.max(0, ...v.map(depthOf))
        : typeof v === "object" && v !== null
          ? 1 + Math.max(0, ...Object.values(v).map(depthOf))
          : 0
    const text = JSON.stringify(value)
    const tooDeep =
      jsonLimitExceeded(`${"[".repeat(50)}${text}${"]".repeat(50)}`) === "JSON nested deeper than 64 levels"
    expect(tooDeep).toBe(50 + depthOf(value) > MAX_JSON_DEPTH)
  })
})
