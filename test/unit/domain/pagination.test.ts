/** Paths and pages at the boundary: what the server accepts is what the OpenAPI document says. */
import { describe, expect, it } from "@effect/vitest"
import { Either, JSONSchema, Schema } from "effect"
import fc from "fast-check"
import { PageParams, ResourceId } from "../../../src/domain/pagination.ts"

const decodeLimit = (limit: string) => Schema.decodeUnknownEither(PageParams)({ limit })

describe("limit", () => {
  it("is a plain decimal integer: 0x10, 1e1, +5, ' 5' and 5.0 are refused, not read as numbers", () => {
    expect(decodeLimit("5")).toEqual(Either.right({ limit: 5 }))
    expect(decodeLimit("100")).toEqual(Either.right({ limit: 100 }))
    for (const odd of ["0x10", "1e1", "+5", " 5", "5 ", "5.0", "0b11", "", "Infinity", "-0"]) {
      expect(Either.isLeft(decodeLimit(odd)), JSON.stringify(odd)).toBe(true)
    }
  })
})

describe("ResourceId", () => {
  it("accepts exactly what its documented pattern matches", () => {
    const documented = JSONSchema.make(ResourceId)
    const pattern = "pattern" in documented && typeof documented.pattern === "string" ? documented.pattern : ""
    expect(pattern).not.toBe("")
    const matches = new RegExp(pattern)
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 70 }),
          fc.stringMatching(/^[A-Za-z0-9]{1,64}$/),
          fc.stringMatching(/^[a-z0-9]{60,70}$/)
        ),
        (id) => Either.isRight(Schema.decodeUnknownEither(ResourceId)(id)) === matches.test(id)
      )
    )
  })
})
