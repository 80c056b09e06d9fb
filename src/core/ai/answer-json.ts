/**
 * The JSON value of a structured answer. A model asked for JSON now and then wraps it in a code
 * fence (```json … ```) or in a sentence before or after it; the one JSON object inside is the
 * answer, read rather than sent back for a corrective retry (a second paid call).
 *
 * An answer that parses whole is taken as it is. Otherwise its candidates are the `{…}` spans that
 * begin outside any object (what lies between them, prose and fences, counts for nothing; inside,
 * strings and escapes are tracked, so a brace in a string is text) and parse as JSON: exactly one is
 * the answer; none leaves the answer invalid as it was, and several too (which one the model meant
 * would be a guess). One pass over the answer, whatever it holds.
 */
import { Either, ParseResult, Schema } from "effect"

/** The `{…}` spans of `text` that begin outside any object, in order (parsed or not). */
export const topLevelObjects = (text: string): ReadonlyArray<string> => {
  const spans: Array<string> = []
  let depth = 0
  let start = 0
  let inString = false
  let escaped = false
  for (let at = 0; at < text.length; at++) {
    const char = text[at]
    if (depth === 0) {
      if (char === "{") {
        depth = 1
        start = at
      }
    } else if (inString) {
      if (escaped) escaped = false
      else if (char === "\\") escaped = true
      else if (char === '"') inString = false
    } else if (char === '"') inString = true
    else if (char === "{" || char === "[") depth++
    else if (char === "}" || char === "]") {
      depth--
      if (depth === 0) spans.push(text.slice(start, at + 1))
    }
  }
  return spans
}

const parse = (text: string) =>
  Either.try({ try: (): unknown => JSON.parse(text), catch: (error) => (error instanceof Error ? error.message : "") })

/** The answer's text as its JSON value: whole, or the one JSON object fenced or wrapped in prose. */
export const AnswerJson = Schema.transformOrFail(Schema.String, Schema.Unknown, {
  strict: true,
  decode: (text, _, ast) =>
    Either.match(parse(text), {
      onRight: ParseResult.succeed,
      onLeft: (problem) => {
        const found = topLevelObjects(text).map(parse).filter(Either.isRight)
        const [only] = found
        if (found.length === 1 && only !== undefined) return ParseResult.succeed(only.right)
        const message =
          found.length === 0
            ? problem
            : `${found.length} JSON objects in the answer (code fences or prose around them): answer with one`
        return ParseResult.fail(new ParseResult.Type(ast, text, message))
      }
    }),
  encode: (value, _, ast) =>
    Either.match(
      Either.try(() => JSON.stringify(value)),
      {
        onRight: ParseResult.succeed,
        onLeft: () => ParseResult.fail(new ParseResult.Type(ast, value, "Not JSON"))
      }
    )
})

/** `schema` read from an answer's text (see `AnswerJson`). */
export const answerOf = <A, I>(schema: Schema.Schema<A, I>): Schema.Schema<A, string> =>
  Schema.compose(AnswerJson, schema, { strict: false })
