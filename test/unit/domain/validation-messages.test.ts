/**
 * Issue #16: a validation message says what is wrong once, clearly, the same over REST (the
 * `details.issues` of a VALIDATION_ERROR, from `issuesByPath`) and RPC (the decode defect, from
 * `conciseReport` over the `TreeFormatter` report the RPC server writes): no "Expected undefined"
 * of an optional field, one message for a union's members, none of the schema's inner nodes.
 */
import { Either, ParseResult, Schema } from "effect"
import type { ParseOptions } from "effect/SchemaAST"
import { describe, expect, it } from "vitest"
import { conciseReport, issuesByPath } from "../../../src/domain/errors.ts"
import { GenerateOpeners } from "../../../src/domain/openers.ts"
import { PageParams } from "../../../src/domain/pagination.ts"
import { CreateSession, PatchTranscript } from "../../../src/domain/sessions.ts"

/** An optional field that is not `exact` is a union with `undefined` (as `ListSessionsParams.matchId`). */
const Optional = Schema.Struct({
  count: Schema.optional(Schema.Int.pipe(Schema.between(1, 5))),
  sender: Schema.optional(Schema.NullOr(Schema.Literal("me", "them", "system")))
})

const TABLE: ReadonlyArray<{
  readonly what: string
  readonly decode: (input: unknown, options: ParseOptions) => Either.Either<unknown, ParseResult.ParseError>
  readonly input: unknown
  readonly issues: ReadonlyArray<{ readonly path: string; readonly message: string }>
}> = [
  {
    what: "a string for an integer",
    decode: Schema.decodeUnknownEither(GenerateOpeners),
    input: { profile: { name: "Sam" }, count: "3" },
    issues: [{ path: "count", message: 'Expected number, actual "3"' }]
  },
  {
    what: "out of range, in an optional field",
    decode: Schema.decodeUnknownEither(Optional),
    input: { count: 6 },
    issues: [{ path: "count", message: "Expected a number between 1 and 5, actual 6" }]
  },
  {
    what: "not an integer, in an optional field",
    decode: Schema.decodeUnknownEither(Optional),
    input: { count: 2.5 },
    issues: [{ path: "count", message: "Expected an integer, actual 2.5" }]
  },
  {
    what: "a query limit out of range",
    decode: Schema.decodeUnknownEither(PageParams),
    input: { limit: "1000" },
    issues: [{ path: "limit", message: "Expected a number between 1 and 100, actual 1000" }]
  },
  {
    what: "an unknown enum value, in a nullable optional field",
    decode: Schema.decodeUnknownEither(Optional),
    input: { sender: "bot" },
    issues: [{ path: "sender", message: 'Expected "me", "them" or "system", actual "bot"' }]
  },
  {
    what: "an unknown enum value, deep",
    decode: Schema.decodeUnknownEither(PatchTranscript),
    input: { messages: [{ position: 0, sender: "bot" }] },
    issues: [{ path: "messages.0.sender", message: 'Expected "me", "them" or "system", actual "bot"' }]
  },
  {
    what: "a required field missing",
    decode: Schema.decodeUnknownEither(CreateSession),
    input: {},
    issues: [{ path: "uploadIds", message: "is missing" }]
  },
  {
    what: "an extra key, deep",
    decode: Schema.decodeUnknownEither(GenerateOpeners),
    input: { profile: { name: "Sam", age: 30 } },
    issues: [{ path: "profile.age", message: 'is unexpected, expected: "name" | "bio" | "interests"' }]
  },
  {
    what: "several fields wrong at once",
    decode: Schema.decodeUnknownEither(PatchTranscript),
    input: { messages: [{ position: -1, text: 5 }] },
    issues: [
      { path: "messages.0.position", message: "Expected a non-negative number, actual -1" },
      { path: "messages.0.text", message: "Expected string, actual 5" }
    ]
  }
]

const failureOf = (row: (typeof TABLE)[number]) => {
  const result = row.decode(row.input, { errors: "all" })
  if (Either.isRight(result)) throw new Error("expected a decode failure")
  return result.left
}

describe("validation messages", () => {
  for (const row of TABLE) {
    it(`${row.what}: REST says it once per field`, () => {
      const error = failureOf(row)
      expect(issuesByPath(ParseResult.ArrayFormatter.formatErrorSync(error))).toEqual({ issues: row.issues })
    })

    it(`${row.what}: RPC says the same, without the schema's tree`, () => {
      const report = ParseResult.TreeFormatter.formatErrorSync(failureOf(row))
      expect(conciseReport(report)).toBe(
        `The payload is invalid: ${row.issues.map((issue) => `${issue.path}: ${issue.message}`).join("; ")}`
      )
    })
  }

  it("no message repeats itself or names undefined or null", () => {
    for (const row of TABLE) {
      const error = failureOf(row)
      for (const issue of issuesByPath(ParseResult.ArrayFormatter.formatErrorSync(error)).issues) {
        expect(issue.message, row.what).not.toMatch(/Expected (undefined|null)\b/)
        expect(issue.message, row.what).not.toContain("; ")
      }
    }
  })

  it("a defect that is not a decode report is kept as it is", () => {
    expect(conciseReport("Unknown request tag: users.nothing")).toBe("Unknown request tag: users.nothing")
  })
})
