/** `AppError`: the catalog's tagged errors as one union, as a type and as a schema. */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { AppError, codeOf, ErrorCatalog, type ErrorCode } from "../../../src/domain/errors.ts"

const catalog = Object.entries(ErrorCatalog) as ReadonlyArray<[ErrorCode, (typeof ErrorCatalog)[ErrorCode]]>

describe("AppError", () => {
  it("every catalog error round-trips through the union schema as its own class, and names its code", () => {
    for (const [code, { error }] of catalog) {
      const instance = new error({ message: `a ${code}`, details: { code } })
      const decoded = Schema.decodeUnknownSync(AppError)(Schema.encodeSync(AppError)(instance))
      expect(decoded).toBeInstanceOf(error)
      expect(decoded).toMatchObject({ _tag: error._tag, message: `a ${code}`, details: { code } })
      expect(codeOf(decoded)).toBe(code)
    }
  })

  it("refuses what is not one of them; infrastructure failures have no code of their own", () => {
    expect(Schema.is(AppError)({ _tag: "DbError", message: "x" })).toBe(false)
    expect(Schema.decodeUnknownEither(AppError)({ _tag: "NotFound" })._tag).toBe("Left")
    expect(codeOf({ _tag: "DbError" })).toBe("INTERNAL_ERROR")
  })
})
